"""botocore's exception classes, imported only when the AWS SDK is there.

The provider catches a few botocore errors itself (to read their codes) before
:func:`~mayfly.providers.ecs.aws.translate` turns the rest into Mayfly errors.
Importing botocore directly would fail with a bare ImportError when boto3 is not
installed; :func:`errors` raises ``MissingDependency`` with the install hint instead.
"""

from __future__ import annotations

from typing import Any

from mayfly.providers.ecs.aws import boto3_module


def errors() -> Any:
    """The ``botocore.exceptions`` module.

    Raises:
        MissingDependency: boto3 (and so botocore) is not installed.
    """
    boto3_module()
    from botocore import exceptions

    return exceptions

"""The AWS deploy plug-in: ``cloud: aws`` stack files become ``ecs`` targets.

Registered through the ``mayfly.providers`` entry-point group (``aws``), next to the
``ecs`` provider it deploys for. Importing this module imports neither Pulumi nor
boto3: the component (:mod:`.component`) is imported when a program is built, the
ECR login (:mod:`.registry`) when images are pushed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from mayfly.core import hookimpl
from mayfly.core.errors import CredentialsMissing
from mayfly.infra.cloud import Cloud
from mayfly.infra.clouds.aws.stack import AwsStack
from mayfly.infra.errors import DeployFailed

if TYPE_CHECKING:
    from mayfly.core.clouds import CloudRegistry
    from mayfly.infra.images import ImageRegistry
    from mayfly.infra.stackfile import StackBase

__all__ = ["AwsCloud", "AwsStack", "mayfly_register_clouds"]


class AwsCloud(Cloud):
    """ECS Fargate, SQS, S3, ECR and CloudWatch Logs, built by the ``mayfly:aws:Target`` component."""

    name = "aws"
    provider = "ecs"
    stack_model = AwsStack
    pulumi_plugin = "aws"
    pulumi_package = "pulumi_aws"
    label = "AWS"
    install_hint = 'pip install "mayfly-tasks[aws,deploy]"'
    credentials_markers: ClassVar[tuple[str, ...]] = (
        "NoCredentialProviders",
        "no valid credential sources",
        "failed to refresh cached credentials",
        "InvalidClientTokenId",
        "ExpiredToken",
        "UnrecognizedClientException",
        "security token included in the request is invalid",
        "SignatureDoesNotMatch",
        "get identity: get credentials",
    )
    credentials_hint = "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`"

    def check_credentials(self, stack: StackBase) -> None:
        """Fail early, and in one line, when boto3 finds no AWS credentials at all."""
        from mayfly.providers.ecs.aws import boto3_module

        session = boto3_module().session.Session(region_name=stack.region)
        if session.get_credentials() is None:
            raise CredentialsMissing(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run `aws sso login` / `aws configure`"
            )

    def program(self, stack: StackBase) -> Callable[[], None]:
        from mayfly.infra.clouds.aws.component import stack_program

        assert isinstance(stack, AwsStack)  # parse_stack picked this model for `cloud: aws`
        return stack_program(stack)

    def image_registry(self, stack: StackBase, outputs: Mapping[str, Any]) -> ImageRegistry:
        from mayfly.infra.clouds.aws.registry import EcrRegistry

        repository = outputs.get("repository_url")
        if not isinstance(repository, str) or not repository:
            raise DeployFailed(f"stack {stack.name!r} has no 'repository_url' output to push runtime images to")
        return EcrRegistry(repository, stack.region)


@hookimpl
def mayfly_register_clouds(registry: CloudRegistry) -> None:
    """Register :class:`AwsCloud` under the name ``aws``."""
    registry.add(AwsCloud)

"""Errors of ``mayfly deploy | preview | destroy | outputs``, each one line with a stable code.

Pulumi's Automation API raises ``CommandError`` subclasses carrying the whole
CLI transcript; :func:`mayfly.infra.deploy.translate` turns them into these
classes so the CLI prints one line a user can act on. This module imports no
Pulumi code, so the CLI can report a missing SDK or CLI without it.
"""

from __future__ import annotations

from mayfly.core.errors import Conflict, InvalidInput, MayflyError, MissingDependency, NotFound

#: Where the Pulumi CLI comes from (it is a Go binary, not a Python package).
PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/install/"
#: The pip extras a deploy needs on top of the core install.
DEPLOY_EXTRAS = 'pip install "mayfly-tasks[deploy]"'


class InvalidStackFile(InvalidInput):
    """A stack file (``stacks/NAME.yaml``) is malformed; one line per problem, nothing ran."""

    code = "invalid_stack_file"


class PulumiNotInstalled(MissingDependency):
    """The ``pulumi`` CLI is not on PATH: the Automation API drives it and cannot work without it."""

    code = "pulumi_not_installed"

    def __init__(self, command: str = "deploy") -> None:
        super().__init__(
            f"`mayfly {command}` needs the Pulumi CLI, which is not on PATH: install it "
            f"(see {PULUMI_INSTALL_URL}, e.g. `curl -fsSL https://get.pulumi.com | sh`) and open a new shell"
        )


class PulumiSdkMissing(MissingDependency):
    """The Pulumi Python SDK or the cloud's Pulumi package is not installed."""

    code = "pulumi_sdk_missing"


class StackNotFound(NotFound):
    """The named stack does not exist in its backend (never deployed, destroyed, or another backend)."""

    code = "stack_not_found"


class ConcurrentUpdate(Conflict):
    """Another update holds the stack's lock."""

    code = "concurrent_update"


class DeployFailed(MayflyError):
    """Pulumi ran and failed; the message carries the first error line it printed."""

    code = "deploy_failed"


class ImagePushFailed(DeployFailed):
    """A runtime image could not be pushed to the stack's registry."""

    code = "image_push_failed"

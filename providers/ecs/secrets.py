"""Secrets on ECS: one SSM SecureString parameter per (target, home, task, attempt, name), resolved by ECS.

RunTask overrides cannot carry ``secrets`` (ECS's ``ContainerOverride`` has no
such field), so a task with secrets runs from its own task definition revision
whose container lists ``{"name": "MAYFLY_SECRET_<NAME>", "valueFrom": <parameter ARN>}``.
ECS (with the task execution role) reads each parameter when the task starts and
sets the variable in the container; the runtime's boot agent moves every
``MAYFLY_SECRET_*`` variable into a 0400 file ``$MAYFLY_SECRETS_DIR/<NAME>`` and
removes it from the environment before the task's command runs, so tasks see the
same contract as on Docker.

The value is stored base64-encoded (a secret may be binary; an environment
variable cannot hold a NUL byte): the task definition, the RunTask call, the SQS
message and CloudWatch Logs never hold it, and SSM holds it encrypted with the
account's ``aws/ssm`` KMS key. Names are deterministic, so a relaunch or a
redelivered message overwrites the same parameters; ``remove`` deletes them
(:func:`delete_attempt`).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Mapping

from mayfly.core.errors import LaunchFailed
from mayfly.providers.ecs import sdk
from mayfly.providers.ecs.aws import Clients, error_code, error_message, translate

#: Prefix of the container variables ECS fills from the parameters (the boot agent moves them to files).
ENV_PREFIX = "MAYFLY_SECRET_"
#: Root of every parameter Mayfly writes; the target's are under ``/mayfly/<target>/``.
ROOT = "/mayfly"
#: SSM's largest parameter value (advanced tier); base64 of 6 KiB fills it.
MAX_PARAMETER_CHARS = 8192
#: Above this a parameter needs the advanced tier (standard: 4 KB).
STANDARD_PARAMETER_CHARS = 4096
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def target_path(target: str) -> str:
    """``/mayfly/<target>``: the target's parameters (and the IAM policies' resource) are under it."""
    return f"{ROOT}/{_UNSAFE.sub('-', target)[:200]}"


def attempt_path(target: str, home_id: str, task_id: str, attempt: int) -> str:
    """The folder of one attempt's parameters: ``/mayfly/<target>/<home>/<task>/<attempt>``."""
    return f"{target_path(target)}/{_UNSAFE.sub('-', home_id)}/{_UNSAFE.sub('-', task_id)}/{int(attempt)}"


def encode(name: str, value: bytes) -> str:
    """The parameter's text (base64); a value SSM cannot hold is refused (not retryable)."""
    text = base64.b64encode(value).decode()
    if len(text) > MAX_PARAMETER_CHARS:
        raise LaunchFailed(
            f"secret {name!r} is {len(value)} bytes; ECS targets pass secrets of at most "
            f"{MAX_PARAMETER_CHARS * 3 // 4} bytes (SSM Parameter Store's limit)",
            retryable=False,
        )
    return text


class ParameterStore:
    """Writes and deletes one target's secret parameters (SSM ``PutParameter`` / ``DeleteParameters``)."""

    def __init__(self, clients: Clients, target: str, home_id: str) -> None:
        self._clients = clients
        self.target = target
        self.home_id = home_id
        self._prefix: str | None = None
        self._lock = threading.Lock()

    def _arn_prefix(self) -> str:
        """``arn:<partition>:ssm:<region>:<account>:parameter`` (STS GetCallerIdentity, once)."""
        with self._lock:
            if self._prefix is None:
                with translate("looking up the AWS account for SSM parameter ARNs"):
                    identity = self._clients("sts").get_caller_identity()
                partition = str(identity.get("Arn", "arn:aws:")).split(":")[1] or "aws"
                self._prefix = f"arn:{partition}:ssm:{self._clients.region}:{identity['Account']}:parameter"
            return self._prefix

    def put(self, task_id: str, attempt: int, values: Mapping[str, bytes]) -> list[dict[str, str]]:
        """Store each value as a SecureString; returns the container's ``secrets`` (sorted by name).

        Idempotent: the same attempt always writes the same names (``Overwrite``).

        Raises:
            LaunchFailed: a value is too large (not retryable), or SSM refused the write.
        """
        if not values:
            return []
        folder = attempt_path(self.target, self.home_id, task_id, attempt)
        texts = {name: encode(name, value) for name, value in values.items()}
        prefix = self._arn_prefix()
        ssm = self._clients("ssm")
        refs = []
        for name in sorted(texts):
            parameter = f"{folder}/{name}"
            text = texts[name]
            with translate(f"storing secret {name!r} in SSM Parameter Store"):
                bx = sdk.errors()
                try:
                    ssm.put_parameter(
                        Name=parameter,
                        Value=text,
                        Type="SecureString",
                        Overwrite=True,
                        Tier="Advanced" if len(text) > STANDARD_PARAMETER_CHARS else "Standard",
                        Description="Mayfly task secret (deleted with the attempt)",
                    )
                except bx.ClientError as exc:
                    code = error_code(exc)
                    if code in ("AccessDeniedException", "ParameterLimitExceeded", "ValidationException"):
                        raise LaunchFailed(
                            f"SSM refused to store secret {name!r} ({code}: {error_message(exc)})", retryable=False
                        ) from exc
                    raise
            refs.append({"name": f"{ENV_PREFIX}{name}", "valueFrom": f"{prefix}{parameter}"})
        return refs

    def delete_attempt(self, task_id: str, attempt: int) -> int:
        """Delete every parameter of the attempt; returns how many there were (0: nothing to do)."""
        folder = attempt_path(self.target, self.home_id, task_id, attempt)
        ssm = self._clients("ssm")
        names: list[str] = []
        with translate(f"listing the secret parameters under {folder}"):
            paginator = ssm.get_paginator("get_parameters_by_path")
            for page in paginator.paginate(Path=folder, Recursive=False, WithDecryption=False):
                names.extend(str(p["Name"]) for p in page.get("Parameters") or [])
        for start in range(0, len(names), 10):
            with translate(f"deleting the secret parameters under {folder}"):
                ssm.delete_parameters(Names=names[start : start + 10])
        return len(names)

"""A container definition's ``secrets``, resolved as ECS does with the task execution role.

Each ``{"name": VAR, "valueFrom": REF}`` becomes the variable ``VAR`` in the
container. ``REF`` is an SSM parameter (its ARN, or its name in the task's region)
or a Secrets Manager secret ARN (``arn:...:secretsmanager:...:secret:ID``, with
an optional ``:json-key:version-stage:version-id`` suffix). The values come from
moto's SSM and Secrets Manager (``get_client(service, region)``). A reference
that cannot be read fails the task before its container is created, with ECS's
``ResourceInitializationError: unable to pull secrets or registry auth: ...``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: ECS's stoppedReason prefix when the secrets of a task cannot be fetched.
PREFIX = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "


class SecretUnavailable(Exception):
    """A reference could not be resolved; ``str()`` is the task's stoppedReason."""


def resolve(secrets: list[dict[str, Any]], region: str, get_client: Callable[[str, str], Any]) -> dict[str, str]:
    """Variable -> value for every reference (SSM SecureStrings decrypted).

    Raises:
        SecretUnavailable: one of them is missing or unreadable (ECS's reason).
    """
    out: dict[str, str] = {}
    for item in secrets:
        var, ref = str(item.get("name") or ""), str(item.get("valueFrom") or "")
        parts = ref.split(":")
        if ref.startswith("arn:") and len(parts) >= 7 and parts[2] == "secretsmanager":
            out[var] = _secrets_manager(parts, get_client)
        else:
            out[var] = _ssm(ref, parts, region, get_client)
    return out


def _ssm(ref: str, parts: list[str], region: str, get_client: Callable[[str, str], Any]) -> str:
    name = ref
    if ref.startswith("arn:"):
        if len(parts) < 6 or parts[2] != "ssm" or not parts[5].startswith("parameter/"):
            raise SecretUnavailable(f"{PREFIX}invalid secret reference {ref!r}")
        region = parts[3] or region
        rest = ":".join(parts[5:])[len("parameter/") :]
        name = f"/{rest}" if "/" in rest else rest
    try:
        found = get_client("ssm", region).get_parameters(Names=[name], WithDecryption=True)
    except Exception as exc:
        raise SecretUnavailable(f"{PREFIX}unable to retrieve secrets from ssm: {exc}") from None
    params = found.get("Parameters") or []
    if not params:
        raise SecretUnavailable(
            f"{PREFIX}unable to retrieve secrets from ssm: service call has been retried 1 time(s): "
            f"invalid parameters: {name}"
        )
    return str(params[0]["Value"])


def _secrets_manager(parts: list[str], get_client: Callable[[str, str], Any]) -> str:
    secret_id = ":".join(parts[:7])
    json_key = parts[7] if len(parts) > 7 else ""
    stage = parts[8] if len(parts) > 8 else ""
    version = parts[9] if len(parts) > 9 else ""
    kwargs: dict[str, str] = {"SecretId": secret_id}
    if stage:
        kwargs["VersionStage"] = stage
    if version:
        kwargs["VersionId"] = version
    try:
        value = str(get_client("secretsmanager", parts[3]).get_secret_value(**kwargs).get("SecretString") or "")
    except Exception as exc:
        raise SecretUnavailable(f"{PREFIX}unable to retrieve secret from asm: {exc}") from None
    if not json_key:
        return value
    try:
        return str(json.loads(value)[json_key])
    except (ValueError, KeyError, TypeError):
        raise SecretUnavailable(
            f"{PREFIX}unable to retrieve secret from asm: retrieved secret from Secrets Manager did not contain "
            f"json key {json_key}"
        ) from None

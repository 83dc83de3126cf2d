"""The deploy engine: stack files through Pulumi's Automation API, outputs into targets.

``mayfly deploy`` runs, in order, and stops at the first problem with one line:

1. the stack file is validated (:mod:`mayfly.infra.stackfile`), before anything else;
2. the Pulumi CLI must be on PATH (the Automation API drives it), the Pulumi SDK
   and the cloud's Pulumi package importable, and cloud credentials present;
3. the stack is created or selected with an *inline* program (the cloud's
   component, from its deploy plug-in :class:`mayfly.infra.cloud.Cloud`) in project
   ``mayfly``; its config (``aws:region``) is set and the resource plugin installed;
4. ``up`` streams progress to a callback as :class:`DeployEvent` objects;
5. the outputs are validated as the provider's settings (``EcsSettings`` on AWS);
6. the runtime images built on this machine are pushed to the stack's registry
   (the cloud's :class:`~mayfly.infra.images.ImageRegistry`);
7. the target is recorded with those settings (``replace=True``).

This module names no cloud: everything cloud-specific comes from the stack's
deploy plug-in (:func:`mayfly.infra.cloud.cloud_for`). The target is recorded
last, so no task can be queued for a target whose images are not in its registry yet.

State lives in a Pulumi backend: by default the local file backend
``file://$MAYFLY_HOME/pulumi``, or the stack file's ``backend`` (``s3://...``,
Pulumi Cloud, ...). File, S3, GCS and Azure Blob backends encrypt stack secrets
with a passphrase: when neither ``PULUMI_CONFIG_PASSPHRASE`` nor
``PULUMI_CONFIG_PASSPHRASE_FILE`` is set, Mayfly creates a random one in
``$MAYFLY_HOME/pulumi-passphrase`` (mode 0600) and uses it for every stack of this
home. Keep it with the state: without it the stacks cannot be updated. On a shared
backend, set the same ``PULUMI_CONFIG_PASSPHRASE`` on every machine instead.

Each stack keeps a work directory ``$MAYFLY_HOME/deploy/NAME/`` (Pulumi's project
and stack settings, and ``stack.json``, the validated stack file), so ``preview``,
``destroy`` and ``outputs`` find the stack, its backend and region by name.

Automation API errors never leave this module: :func:`translate` maps them to
:mod:`mayfly.infra.errors` classes. A real ``pulumi up`` is never run by the
project's tests (the Pulumi CLI cannot be installed there); everything up to the
Automation API call is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from mayfly.core.config import Home
from mayfly.core.errors import Conflict, CredentialsMissing, MayflyError, TargetNotFound
from mayfly.infra.cloud import Cloud, cloud_for
from mayfly.infra.errors import (
    PULUMI_INSTALL_URL,
    ConcurrentUpdate,
    DeployFailed,
    PulumiNotInstalled,
    PulumiSdkMissing,
    StackNotFound,
)
from mayfly.infra.images import ImageRegistry, PushedImage
from mayfly.infra.stackfile import Stack, load_stack_file, parse_stack, stack_to_json

if TYPE_CHECKING:
    from pulumi import automation as auto

    from mayfly.core.app import Mayfly
    from mayfly.core.records import Target

#: Pulumi project of every Mayfly stack.
PROJECT = "mayfly"
#: Environment variables through which Pulumi takes the secrets passphrase.
PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class DeployEvent:
    """One step of a preview, up or destroy, free of Pulumi types (for the CLI to render)."""

    #: ``resource``: a resource step started/finished/failed; ``diagnostic``: a message; ``summary``: the end.
    kind: Literal["resource", "diagnostic", "summary"]
    #: Resource steps: started, done or failed.
    status: Literal["started", "done", "failed", ""] = ""
    #: Pulumi's operation: create, update, delete, replace, same, read, refresh, ...
    op: str = ""
    #: Resource type token (``aws:sqs/queue:Queue``) and logical name (``dev-tasks``).
    type: str = ""
    name: str = ""
    #: Diagnostics: severity (info, warning, error) and text.
    severity: str = ""
    message: str = ""
    #: Summary: operation -> count.
    changes: dict[str, int] = field(default_factory=dict)


Progress = Callable[[DeployEvent], None]


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _op(value: object) -> str:
    return str(getattr(value, "value", value))


def to_deploy_event(event: auto.EngineEvent) -> DeployEvent | None:
    """Translate one engine event (None for the ones a user need not see)."""
    if event.resource_pre_event is not None:
        meta = event.resource_pre_event.metadata
        return DeployEvent("resource", "started", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.res_outputs_event is not None:
        meta = event.res_outputs_event.metadata
        return DeployEvent("resource", "done", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.res_op_failed_event is not None:
        meta = event.res_op_failed_event.metadata
        return DeployEvent("resource", "failed", _op(meta.op), meta.type, _name_of(meta.urn))
    if event.diagnostic_event is not None:
        diag = event.diagnostic_event
        if diag.severity == "debug" or diag.ephemeral:
            return None
        name = _name_of(diag.urn or "")
        return DeployEvent("diagnostic", severity=diag.severity, message=diag.message.strip(), name=name)
    if event.summary_event is not None:
        return DeployEvent("summary", changes=changes(event.summary_event.resource_changes))
    return None


def changes(op_map: Mapping[Any, int] | None) -> dict[str, int]:
    """Pulumi's OpMap as plain ``{"create": 3, "same": 12}``."""
    return {_op(k): int(v) for k, v in (op_map or {}).items()}


# ---------------------------------------------------------------- errors

_GENERIC = re.compile(r"^(update|preview|destroy|refresh) failed$|^\d+ errors? occurred:?$")
_PASSPHRASE = ("incorrect passphrase", "passphrase must be set", "PULUMI_CONFIG_PASSPHRASE")


def first_error_line(text: str) -> str | None:
    """The first informative ``error:`` line of Pulumi's output (skipping "update failed" and the like)."""
    # str(CommandError) starts its two sections with " stdout: " and " stderr: ".
    lines = [re.sub(r"^(stdout|stderr):\s*", "", raw.strip()) for raw in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("error:"):
            continue
        message = line.removeprefix("error:").strip()
        if re.match(r"^\d+ errors? occurred:?$", message):
            detail = next((n.strip().lstrip("* ").strip() for n in lines[i + 1 :] if n.strip()), "")
            if detail:
                return _clip(detail)
        if message and not _GENERIC.match(message):
            return _clip(message)
    return None


def _clip(line: str, limit: int = 400) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def translate(
    exc: BaseException, *, stack: str, doing: str, first_error: str | None = None, cloud: Cloud | None = None
) -> MayflyError:
    """One Mayfly error for an Automation API (or CLI launch) failure (``cloud`` knows its credential errors)."""
    if isinstance(exc, MayflyError):
        return exc
    if isinstance(exc, FileNotFoundError) and Path(str(exc.filename or "")).name == "pulumi":
        return PulumiNotInstalled(doing)
    from pulumi.automation import errors as ae

    if isinstance(exc, ae.InvalidVersionError):
        return DeployFailed(f"the Pulumi CLI is too old for this Pulumi SDK ({exc}): upgrade it ({PULUMI_INSTALL_URL})")
    if isinstance(exc, ae.ConcurrentUpdateError):
        return ConcurrentUpdate(
            f"stack {stack!r} is locked by another update; wait for it to finish (if none is running, a crashed "
            "deploy left the lock: `pulumi cancel` on Pulumi Cloud, or delete the stack's file under "
            ".pulumi/locks/ in a DIY backend)"
        )
    if isinstance(exc, ae.StackNotFoundError):
        return StackNotFound(f"stack {stack!r} does not exist in its backend: deploy it with `mayfly deploy`")
    if isinstance(exc, ae.CommandError):
        result_text = str(exc)
        lowered = result_text.lower()
        markers = cloud.credentials_markers if cloud is not None else ()
        if cloud is not None and any(marker.lower() in lowered for marker in markers):
            line = first_error_line(result_text) or "no valid credentials"
            return CredentialsMissing(
                f"{doing} {stack}: {cloud.label or cloud.name} credentials missing or rejected ({line}); "
                f"{cloud.credentials_hint}"
            )
        if any(marker.lower() in lowered for marker in _PASSPHRASE):
            return DeployFailed(
                f"{doing} {stack}: the secrets passphrase is missing or wrong: set PULUMI_CONFIG_PASSPHRASE (or "
                "PULUMI_CONFIG_PASSPHRASE_FILE) to the one the stack was created with"
            )
        found = first_error_line(first_error or "") or first_error_line(result_text)
        if found is None:
            tail = [x.strip() for x in result_text.splitlines() if x.strip()]
            found = _clip(tail[-1]) if tail else exc.__class__.__name__
        return DeployFailed(f"{doing} {stack} failed: {found}")
    raise exc


# ---------------------------------------------------------------- preconditions


def require_pulumi_cli(command: str) -> str:
    """The path of the ``pulumi`` CLI, or :class:`PulumiNotInstalled`."""
    path = shutil.which("pulumi")
    if path is None:
        raise PulumiNotInstalled(command)
    return path


def require_sdk(cloud: Cloud) -> None:
    """The Pulumi SDK and the cloud's Pulumi package must be importable."""
    for module in ("pulumi", cloud.pulumi_package):
        if module and importlib.util.find_spec(module) is None:
            raise PulumiSdkMissing(f"deploying needs the Python package {module!r}: {cloud.install_hint}")


# ---------------------------------------------------------------- the engine


class DeployEngine:
    """Preview, up, destroy and read outputs of stacks of one Mayfly home."""

    def __init__(self, home: Home, *, progress: Progress | None = None) -> None:
        self.home = home
        self.progress = progress or (lambda _event: None)
        self._first_error: str | None = None

    # ------------------------------------------------------------ where things live

    @property
    def deploy_dir(self) -> Path:
        return self.home.root / "deploy"

    @property
    def default_backend_dir(self) -> Path:
        return self.home.root / "pulumi"

    @property
    def passphrase_file(self) -> Path:
        return self.home.root / "pulumi-passphrase"

    def work_dir(self, name: str) -> Path:
        """Pulumi's project/stack settings and the saved stack file of stack ``name``."""
        return self.deploy_dir / name

    def backend_url(self, stack: Stack) -> str:
        """The stack's backend: its own, or the home's local file backend."""
        if stack.backend:
            return stack.backend
        return f"file://{self.default_backend_dir}"

    # ------------------------------------------------------------ stack files

    def load(self, ref: str) -> Stack:
        """A stack from a file path, or by name: the copy saved by an earlier deploy, else ``stacks/NAME.yaml``."""
        path = Path(ref).expanduser()
        if path.suffix in {".yaml", ".yml", ".json"} or os.sep in ref or path.is_file():
            return load_stack_file(path)
        saved = self.work_dir(ref) / "stack.json"
        if saved.is_file():
            return parse_stack(json.loads(saved.read_text()), str(saved))
        local = Path("stacks") / f"{ref}.yaml"
        if local.is_file():
            return load_stack_file(local)
        raise StackNotFound(
            f"no stack {ref!r} deployed from this Mayfly home ({self.home.root}) and no stacks/{ref}.yaml here: "
            f"deploy it first with `mayfly deploy stacks/{ref}.yaml`"
        )

    def save(self, stack: Stack) -> None:
        """Keep the validated stack so later commands find it by name."""
        work = self.work_dir(stack.name)
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        (work / "stack.json").write_text(stack_to_json(stack) + "\n")

    # ------------------------------------------------------------ environment

    def env_vars(self, stack: Stack) -> dict[str, str]:
        """Environment of the Pulumi CLI: the passphrase for DIY backends, no update check."""
        env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
        backend = self.backend_url(stack)
        diy = not backend.startswith(("https://", "http://"))
        if diy and not any(os.environ.get(var) for var in PASSPHRASE_VARS):
            env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(self.ensure_passphrase())
        return env

    def ensure_passphrase(self) -> Path:
        """``$MAYFLY_HOME/pulumi-passphrase``: created once with a random passphrase, mode 0600."""
        path = self.passphrase_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path

    def workspace_options(self, stack: Stack) -> auto.LocalWorkspaceOptions:
        """Where Pulumi keeps this stack's project settings, state and secrets."""
        from pulumi import automation as auto

        work = self.work_dir(stack.name)
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        backend = self.backend_url(stack)
        if backend.startswith("file://"):
            Path(backend.removeprefix("file://")).expanduser().mkdir(parents=True, exist_ok=True, mode=0o700)
        return auto.LocalWorkspaceOptions(
            work_dir=str(work),
            env_vars=self.env_vars(stack),
            project_settings=auto.ProjectSettings(
                name=PROJECT,
                runtime="python",
                description="Mayfly targets (created by `mayfly deploy`)",
                backend=auto.ProjectBackend(url=backend),
            ),
        )

    # ------------------------------------------------------------ Automation API

    @contextlib.contextmanager
    def _errors(self, stack: Stack, doing: str) -> Iterator[None]:
        self._first_error = None
        try:
            yield
        except MayflyError:
            raise
        except Exception as exc:
            raise translate(
                exc, stack=stack.name, doing=doing, first_error=self._first_error, cloud=cloud_for(stack.cloud)
            ) from exc

    def _on_event(self, event: auto.EngineEvent) -> None:
        translated = to_deploy_event(event)
        if translated is None:
            return
        if translated.kind == "diagnostic" and translated.severity == "error" and self._first_error is None:
            self._first_error = "error: " + translated.message
        self.progress(translated)

    def preflight(self, stack: Stack, command: str, *, credentials: bool = True) -> None:
        """Everything checkable before Pulumi runs: the CLI first, then the SDK, then cloud credentials."""
        cloud = cloud_for(stack.cloud)
        require_pulumi_cli(command)
        require_sdk(cloud)
        if credentials:
            cloud.check_credentials(stack)

    def open_stack(self, stack: Stack, command: str, *, create: bool, configure: bool = True) -> auto.Stack:
        """Select (or create) the Pulumi stack; ``configure`` sets its config and installs the provider plugin.

        The one step that needs the Pulumi CLI; tests stand in for it with a stack that runs the cloud's
        program under ``pulumi.runtime.set_mocks`` (tests/infra/mocked_pulumi.py).
        """
        from pulumi import automation as auto

        cloud = cloud_for(stack.cloud)
        opts = self.workspace_options(stack)
        program = cloud.program(stack)
        with self._errors(stack, command):
            if create:
                selected = auto.create_or_select_stack(
                    stack_name=stack.name, project_name=PROJECT, program=program, opts=opts
                )
            else:
                selected = auto.select_stack(stack_name=stack.name, project_name=PROJECT, program=program, opts=opts)
            if configure:
                # Set on every run: the work directory holding the stack's config may be new (another machine).
                selected.set_all_config({k: auto.ConfigValue(value=v) for k, v in cloud.config(stack).items()})
                if cloud.pulumi_plugin:
                    selected.workspace.install_plugin(cloud.pulumi_plugin, _plugin_version(cloud))
            return selected

    def preview(self, stack: Stack) -> dict[str, int]:
        """What an up would change, operation -> count."""
        self.preflight(stack, "preview")
        pulumi_stack = self.open_stack(stack, "preview", create=True)
        with self._errors(stack, "preview"):
            result = pulumi_stack.preview(on_event=self._on_event, color="never")
        return changes(result.change_summary)

    def up(self, stack: Stack) -> tuple[dict[str, Any], dict[str, int]]:
        """Create or update the stack's resources; its outputs and the changes made."""
        self.preflight(stack, "deploy")
        self.save(stack)
        pulumi_stack = self.open_stack(stack, "deploy", create=True)
        with self._errors(stack, "deploy"):
            result = pulumi_stack.up(on_event=self._on_event, color="never")
        return {k: v.value for k, v in result.outputs.items()}, changes(result.summary.resource_changes)

    def destroy(self, stack: Stack) -> dict[str, int]:
        """Delete every resource of the stack, then the stack itself and its work directory."""
        self.preflight(stack, "destroy")
        pulumi_stack = self.open_stack(stack, "destroy", create=False)
        with self._errors(stack, "destroy"):
            result = pulumi_stack.destroy(on_event=self._on_event, color="never", remove=True)
        shutil.rmtree(self.work_dir(stack.name), ignore_errors=True)
        return changes(result.summary.resource_changes)

    def outputs(self, stack: Stack) -> dict[str, Any]:
        """The stack's current outputs (reads the backend only: no cloud credentials needed for file://)."""
        self.preflight(stack, "outputs", credentials=False)
        pulumi_stack = self.open_stack(stack, "outputs", create=False, configure=False)
        with self._errors(stack, "outputs"):
            return {k: v.value for k, v in pulumi_stack.outputs().items()}


def _plugin_version(cloud: Cloud) -> str:
    package = cloud.pulumi_package
    try:
        return "v" + version(package)
    except PackageNotFoundError:
        raise PulumiSdkMissing(f"deploying needs the Python package {package!r}: {cloud.install_hint}") from None


# ---------------------------------------------------------------- outputs -> target


def target_settings(stack: Stack, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's settings output, validated as its provider's settings."""
    cloud = cloud_for(stack.cloud)
    raw = cloud.settings_output(stack, outputs)
    if not isinstance(raw, dict):
        raise DeployFailed(f"stack {stack.name!r} has no 'settings' output: deploy it again with `mayfly deploy`")
    try:
        model = cloud.settings_model().model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DeployFailed(
            f"outputs of stack {stack.name!r} are not valid {cloud.provider} settings: {problems}"
        ) from None
    settings: dict[str, Any] = model.model_dump(mode="json", exclude_defaults=True)
    return settings


def record_target(app: Mayfly, stack: Stack, outputs: Mapping[str, Any]) -> Target:
    """Add or replace the stack's target with the settings from its outputs."""
    return app.targets.add(
        stack.target_name,
        cloud_for(stack.cloud).provider,
        target_settings(stack, outputs),
        capacity=stack.capacity,
        embedded_runner=not stack.runner.enabled,
        replace=True,
    )


# ---------------------------------------------------------------- images


def push_runtime_images(
    stack: Stack,
    outputs: Mapping[str, Any],
    *,
    client: Any = None,
    progress: Callable[[str], None] | None = None,
    registry: ImageRegistry | None = None,
) -> list[PushedImage]:
    """Push every local ``mayfly/runtime-*:V`` image to the stack's registry (the cloud's plug-in says which)."""
    from mayfly.infra import images

    if registry is None:
        registry = cloud_for(stack.cloud).image_registry(stack, outputs)
    if client is None:
        import docker

        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:  # the SDK raises several unrelated types when no engine answers
            raise DeployFailed(
                f"cannot push runtime images: Docker engine not reachable ({exc.__class__.__name__}); "
                "start it, or deploy with --skip-images"
            ) from None
    local = images.local_runtime_images(client)
    if not local:
        return []
    return registry.push(client, local, progress or (lambda _msg: None))


@dataclass(frozen=True)
class DeployResult:
    """What ``mayfly deploy`` did."""

    stack: str
    target: str
    #: Operation -> count of the ``up``.
    changes: dict[str, int]
    #: Every stack output.
    outputs: dict[str, Any]
    #: Runtime images pushed to the stack's registry.
    images: list[PushedImage]
    #: Where they went (a repository URL; empty when the push was skipped).
    registry: str = ""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "stack": self.stack,
            "target": self.target,
            "changes": self.changes,
            "outputs": self.outputs,
            "images": [{"local": i.local, "remote": i.remote, "digest": i.digest} for i in self.images],
        }


def deploy(
    app: Mayfly,
    stack: Stack,
    *,
    progress: Progress | None = None,
    push: bool = True,
    on_push: Callable[[str], None] | None = None,
    docker_client: Any = None,
) -> DeployResult:
    """The whole ``mayfly deploy``: up, settings check, image push, target recorded."""
    engine = DeployEngine(app.home, progress=progress)
    outputs, made = engine.up(stack)
    target_settings(stack, outputs)  # fail before pushing anything if the outputs are unusable
    pushed: list[PushedImage] = []
    registry = ""
    if push:
        image_registry = cloud_for(stack.cloud).image_registry(stack, outputs)
        registry = image_registry.location
        pushed = push_runtime_images(stack, outputs, client=docker_client, progress=on_push, registry=image_registry)
    record_target(app, stack, outputs)
    return DeployResult(
        stack=stack.name, target=stack.target_name, changes=made, outputs=outputs, images=pushed, registry=registry
    )


def destroy(app: Mayfly, stack: Stack, *, progress: Progress | None = None) -> dict[str, int]:
    """The whole ``mayfly destroy``: refuse while tasks are unfinished, destroy, forget the target."""
    target = stack.target_name
    busy = sum(app.tasks.count_by_target().get(target, {}).values())
    if busy:
        raise Conflict(
            f"target {target!r} still has {busy} unfinished tasks: cancel them (`mayfly task cancel`) before destroying"
        )
    made = DeployEngine(app.home, progress=progress).destroy(stack)
    with contextlib.suppress(TargetNotFound):
        if app.targets.get(target).provider == cloud_for(stack.cloud).provider:
            app.targets.remove(target)
    return made

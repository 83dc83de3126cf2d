"""``mayfly deploy | preview | destroy | outputs``: cloud targets from stack files, through Pulumi.

Top-level commands, registered by :mod:`mayfly.cli.app` (see :func:`register`).
Progress goes to stderr (a spinner and a line per finished resource); results to
stdout, as one JSON document with ``--json``. Every failure is one ``Error:``
line from :mod:`mayfly.infra.errors` (missing Pulumi CLI, invalid stack file,
locked stack, missing credentials, ...).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from mayfly.cli.context import open_local, require_local
from mayfly.cli.options import JsonOpt
from mayfly.cli.output import err_console, fields, plain, print_json, say
from mayfly.cli.terminal import visible
from mayfly.core.config import Home

if TYPE_CHECKING:
    from rich.status import Status

    from mayfly.infra.deploy import DeployEngine, DeployEvent
    from mayfly.infra.stackfile import Stack

StackRef = Annotated[
    str,
    typer.Argument(help="A stack file (stacks/NAME.yaml) or the name of a stack deployed from this home."),
]
StackName = Annotated[str, typer.Argument(help="Name of a stack deployed from this home (or stacks/NAME.yaml).")]

_PAST = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "replace": "replaced",
    "create-replacement": "created replacement",
    "delete-replaced": "deleted old",
    "read": "read",
    "refresh": "refreshed",
    "import": "imported",
}
_PLAN_MARK = {"create": "+", "update": "~", "delete": "-", "replace": "+-", "create-replacement": "++"}
_QUIET_OPS = {"same", "read", "refresh", "discard", "remove-pending-replace"}


class ProgressView:
    """Renders :class:`DeployEvent` objects on stderr: a spinner with the current step, a line per change."""

    def __init__(self, out: Console, status: Status, *, planning: bool) -> None:
        self.out = out
        self.status = status
        self.planning = planning
        self.unchanged = 0
        self._lock = threading.Lock()

    def __call__(self, event: DeployEvent) -> None:
        # The Automation API calls back from its event-reading thread.
        with self._lock:
            self._render(event)

    def _render(self, event: DeployEvent) -> None:
        if event.kind == "resource":
            if event.type == "pulumi:pulumi:Stack":
                return
            if event.op in _QUIET_OPS:
                if event.status == "done" and event.op == "same":
                    self.unchanged += 1
                return
            label = f"{_safe(event.name)} [dim]({_safe(event.type)})[/dim]"
            if event.status == "started":
                self.status.update(plain(f"{event.op} {event.name}…"))
                if self.planning:
                    self.out.print(f"  {_PLAN_MARK.get(event.op, '*'):<2} {event.op:<8} {label}")
            elif event.status == "done" and not self.planning:
                self.out.print(f"  [green]✓[/green] {_PAST.get(event.op, event.op):<8} {label}")
            elif event.status == "failed":
                self.out.print(f"  [red]✗[/red] {event.op} {label} failed")
        elif event.kind == "diagnostic" and event.severity in ("warning", "error") and event.message:
            color = "red" if event.severity == "error" else "yellow"
            first = event.message.splitlines()[0]
            line = f"  [{color}]{event.severity}[/{color}] {_safe(event.name)}: {_safe(first)}"
            self.out.print(line, highlight=False)

    def note(self, message: str) -> None:
        """A free-form step (image pushes)."""
        with self._lock:
            self.status.update(plain(message))
            self.out.print(plain(f"  {message}"))


def _safe(text: str) -> str:
    """Text from the cloud or the stack file, for a line that uses markup: escaped twice over."""
    return escape(visible(text))


def _summary(changes: dict[str, int], *, planned: bool) -> str:
    shown = {op: n for op, n in changes.items() if op != "same" and n}
    verb = "would " if planned else ""
    parts = [f"{verb}{op} {n}" for op, n in sorted(shown.items())] or [f"{verb}change nothing"]
    same = changes.get("same", 0)
    return ", ".join(parts) + (f" ({same} unchanged)" if same else "")


def _engine(view: ProgressView | None = None) -> DeployEngine:
    from mayfly.infra.deploy import DeployEngine

    return DeployEngine(Home.from_env().ensure(), progress=view)


def _load(ref: str, command: str, *, credentials: bool = True) -> tuple[DeployEngine, Stack]:
    """The stack, validated, and every precondition checked, before anything runs."""
    require_local(command)
    engine = _engine()
    stack = engine.load(ref)
    engine.preflight(stack, command, credentials=credentials)
    return engine, stack


def deploy(
    stack: StackRef,
    skip_images: Annotated[
        bool,
        typer.Option("--skip-images", help="Do not push this machine's runtime images to the stack's registry."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create or update a cloud target from a stack file (Pulumi up), then record the target.

    Validates the stack file, runs `pulumi up` through the Automation API with
    streamed progress, pushes the local runtime images (`mayfly runtime build`)
    to the stack's registry and records the outputs as the target's settings.
    Needs the Pulumi CLI (https://www.pulumi.com/docs/install/) and cloud credentials.
    """
    from mayfly.infra.deploy import deploy as run_deploy

    _, loaded = _load(stack, "deploy")
    mf = open_local("deploy")
    say(f"deploying stack {loaded.name} ({loaded.cloud}, {loaded.region})…", err=True)
    with err_console.status(plain(f"deploying {loaded.name}…")) as status:
        view = ProgressView(err_console, status, planning=False)
        result = run_deploy(mf, loaded, progress=view, push=not skip_images, on_push=view.note)
    if as_json:
        print_json(result.to_json())
        return
    say(f"stack {result.stack}: {_summary(result.changes, planned=False)}")
    if result.images:
        say(f"pushed {len(result.images)} runtime images to {result.registry}")
    elif not skip_images:
        say("no local runtime images to push (build them with `mayfly runtime build NAME`)")
    runner = "a runner service in the cloud" if loaded.runner.enabled else "runners in `mayfly server`"
    say(f"target {result.target} recorded ({runner}); check it with `mayfly target check {result.target}`")


def preview(stack: StackRef, as_json: JsonOpt = False) -> None:
    """Show what `mayfly deploy` would create, update or delete; changes nothing."""
    engine, loaded = _load(stack, "preview")
    with err_console.status(plain(f"previewing {loaded.name}…")) as status:
        engine.progress = ProgressView(err_console, status, planning=True)
        planned = engine.preview(loaded)
    if as_json:
        print_json({"stack": loaded.name, "changes": planned})
    else:
        say(f"stack {loaded.name}: {_summary(planned, planned=True)}")


def destroy(
    stack: StackName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete every resource of a deployed stack (queues, bucket and its objects, images, roles) and its target.

    Refuses while the target has unfinished tasks.
    """
    from mayfly.infra.deploy import destroy as run_destroy

    _, loaded = _load(stack, "destroy")
    if not yes:
        typer.confirm(
            f"Destroy stack {loaded.name} ({loaded.cloud}, {loaded.region}) with its bucket contents and images, "
            f"and remove target {loaded.target_name}?",
            abort=True,
            err=True,
        )
    mf = open_local("destroy")
    with err_console.status(plain(f"destroying {loaded.name}…")) as status:
        made = run_destroy(mf, loaded, progress=ProgressView(err_console, status, planning=False))
    if as_json:
        print_json({"stack": loaded.name, "target": loaded.target_name, "changes": made})
    else:
        say(f"stack {loaded.name} destroyed: {_summary(made, planned=False)}; target {loaded.target_name} removed")


def outputs(stack: StackName, as_json: JsonOpt = False) -> None:
    """Print a deployed stack's outputs (queue URLs, bucket, cluster, roles, registry, ...)."""
    engine, loaded = _load(stack, "outputs", credentials=False)
    values: dict[str, Any] = engine.outputs(loaded)
    if as_json:
        print_json(values)
        return
    fields(sorted((k, v) for k, v in values.items() if k != "settings"))


def register(app: typer.Typer) -> None:
    """Add the four commands to the root ``mayfly`` application."""
    app.command("deploy")(deploy)
    app.command("preview")(preview)
    app.command("destroy")(destroy)
    app.command("outputs")(outputs)

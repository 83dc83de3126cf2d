"""``mayfly server``, ``mayfly runner`` and ``mayfly run``."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from typing import Annotated

import typer

from mayfly.cli.context import open_app, open_local
from mayfly.cli.coreoptions import OptionValues, with_options
from mayfly.cli.costs import show_estimate
from mayfly.cli.follow import Follower, summary, task_exit_code
from mayfly.cli.options import ProjectOpt
from mayfly.cli.output import fields, say
from mayfly.cli.tasks import TASK_EXTRAS, Payload, PayloadFile, read_payload, task_options
from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.errors import InvalidInput
from mayfly.core.homelock import server_lock
from mayfly.core.options import TASK
from mayfly.core.serving import Serving, remote_runner, server_running
from mayfly.core.tasks import TaskOptions


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _wait_for_signal(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.is_set():
        stop.wait(0.5)


def server(
    host: Annotated[str, typer.Option("--host", help="Interface the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the HTTP API (0: no API).")] = 8080,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the loops do.")] = False,
    runner_capacity: Annotated[
        int | None,
        typer.Option(
            "--runner-capacity",
            min=1,
            help="Most tasks at once in each of this server's runners (default: each target's capacity). "
            "Servers sharing a target on PostgreSQL: give each its share, so no one runner takes the lot.",
        ),
    ] = None,
) -> None:
    """Run the HTTP API, the control plane and a runner for every target until Ctrl-C.

    One server per home on SQLite: a second one is refused (exit 4) with the pid and host of the first.
    On PostgreSQL (MAYFLY_DATABASE_URL) any number of servers share the database (docs/scale.md).
    """
    _logging(verbose)
    mf = open_local("server")
    lock = server_lock(mf.home.ensure().root)
    if not mf.store.is_postgres:
        lock.acquire()
    api = None
    serving: Serving | None = None
    try:
        targets = [t.name for t in mf.targets.list()]
        serving = Serving(mf, targets, runner_capacity=runner_capacity)
        serving.start()
        where = "no API"
        if port:
            from mayfly.api.serve import ApiServer

            api = ApiServer(mf, host, port)
            api.start()
            where = api.url
        say(f"mayfly server on {mf.home.root} · {where} · targets: {', '.join(targets)} · Ctrl-C to stop", err=True)
        _wait_for_signal(serving.stop_event)
    finally:
        if api is not None:
            api.stop()
        if serving is not None:
            serving.stop()
            say("stopped; running containers are reattached by the next runner", err=True)
        lock.release()


def runner(
    target: Annotated[str, typer.Option("--target", help="Target whose queue to serve.")] = "local",
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            envvar="MAYFLY_TARGET_PROVIDER",
            help="With --settings: run without a store (a runner in the target's cloud).",
        ),
    ] = None,
    settings: Annotated[
        str | None,
        typer.Option("--settings", envvar="MAYFLY_TARGET_SETTINGS", help="The target's settings as JSON."),
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option(
            "--capacity",
            min=1,
            help="Most tasks at once in this runner (default: the target's capacity; 10 with --settings).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the runner does.")] = False,
) -> None:
    """Run a runner alone for one target (the control plane runs elsewhere) until Ctrl-C.

    This is how a target added with --remote-runner is served. One runner per target on a
    home: refused (exit 4) while a server's or another runner's runner serves it.
    """
    _logging(verbose)
    if provider is not None or settings is not None:
        _remote_runner(target, provider, settings, capacity or 10)
        return
    mf = open_local("runner")
    serving = Serving(mf, [target], control=False, all_runners=True, exclusive=True, runner_capacity=capacity)
    try:
        serving.start()
        say(f"mayfly runner for {target} on {mf.home.root} · Ctrl-C to stop", err=True)
        _wait_for_signal(serving.stop_event)
    finally:
        serving.stop()


def _remote_runner(target: str, provider: str | None, settings: str | None, capacity: int) -> None:
    if not provider or not settings:
        raise InvalidInput("a runner without a store needs both --provider and --settings")
    try:
        parsed = json.loads(settings)
    except ValueError as exc:
        raise InvalidInput(f"--settings is not valid JSON: {exc}") from None
    run = remote_runner(target, provider, parsed, Home.from_env(), capacity=capacity)
    stop = threading.Event()
    thread = threading.Thread(target=run.run, args=(stop,), name="mayfly-runner", daemon=True)
    run.provider.check()
    thread.start()
    say(f"mayfly runner for {target} ({provider}) · Ctrl-C to stop", err=True)
    _wait_for_signal(stop)
    thread.join(10)


@with_options(TASK, TASK_EXTRAS)
def run(
    code: Annotated[str, typer.Argument(help="Code name.")],
    payload: Payload = None,
    payload_file: PayloadFile = None,
    *,
    options: OptionValues,
    project: ProjectOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate and print what would run and its estimated cost; store nothing."),
    ] = False,
) -> None:
    """Queue a task, run it, stream its log; exit with the task's exit code.

    Works whether or not a server runs on this home: without one, this command
    runs a control plane and a runner itself until the task ends. With MAYFLY_URL
    set, the server runs it and its log is streamed from there.
    """
    if dry_run:
        _dry_run(code, read_payload(payload, payload_file), task_options(options), project)
        return
    mf = open_app()
    pid = mf.project_id(project)
    opts = task_options(options)
    text = read_payload(payload, payload_file)
    serving = None
    if isinstance(mf, Mayfly) and not server_running(mf.home.root):
        # Loops another `mayfly run` (or a `mayfly runner`) already runs on this home are left to it.
        serving = Serving(mf, [t.name for t in mf.targets.list()], announce_waits=False)
        serving.start()
    try:
        task = mf.tasks.queue(pid, code, text, opts)
        say(f"queued {task.id}", style="dim", err=True)
        follower = Follower(mf, pid, task.id)
        try:
            task = follower.follow()
        except KeyboardInterrupt:
            mf.tasks.cancel(pid, task.id)
            say(f"cancelling {task.id}…", err=True)
            # The same follower: it goes on from the last byte it wrote, nothing is printed twice.
            task = follower.follow(show_status=False)
        finally:
            follower.out.close()
    finally:
        if serving is not None:
            _drain(serving)
    say(summary(task), err=True)
    raise typer.Exit(task_exit_code(task))


def _dry_run(code: str, text: str, opts: TaskOptions, project: str | None) -> None:
    """``run --dry-run``: everything ``run`` checks before it queues, then the task and its estimated cost."""
    mf = open_local("run --dry-run")
    pid = mf.project_id(project)
    rev, row = mf.tasks.plan(pid, code, text, opts)
    target, timeout = str(row["target"]), int(str(row["timeout"]))
    est = mf.costs.estimate(pid, code, target, rev.cpu, rev.memory_mb, timeout)
    fields(
        [
            ("would run", f"{code} rev {rev.rev} on {target}"),
            ("image", rev.image),
            ("cpu", rev.cpu),
            ("memory mb", rev.memory_mb),
            ("timeout", timeout),
            ("priority", row["priority"]),
        ]
    )
    show_estimate(est)
    say("dry run: nothing was queued", style="dim", err=True)


def _drain(serving: Serving, grace: float = 5.0) -> None:
    """Give other tasks this process started, and due webhooks, a moment; the next server takes the rest."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (
        serving.in_flight() or (serving.deliverer is not None and serving.deliverer.due())
    ):
        time.sleep(0.05)
    serving.stop()

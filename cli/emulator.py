"""``mayfly emulator``: local emulators of the clouds' APIs, for trying targets without an account.

``mayfly emulator gcp`` serves a Cloud Run Admin API whose executions really run
in the local Docker engine, Cloud Logging for their output, and runs the Google
Cloud SDK's Pub/Sub emulator and fake-gcs-server beside it; see
:mod:`mayfly.providers.cloudrun.emulator`.

``mayfly emulator aws`` serves SQS, S3, CloudWatch Logs, IAM (moto) and an ECS
API whose tasks really run in the local Docker engine, on one port; see
:mod:`mayfly.providers.ecs.emulator` for what it covers and what it does not.

``mayfly emulator azure`` serves Azure Resource Manager for container groups
whose containers really run in local Docker, and Azurite for queues and blobs;
see :mod:`mayfly.providers.aci.emulator`.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mayfly.cli.output import exit_with_error
from mayfly.core.errors import MayflyError, MissingDependency

if TYPE_CHECKING:
    from mayfly.providers.aci.emulator.local import AzureEmulator
    from mayfly.providers.ecs.emulator import AwsEmulator

INSTALL_HINT = 'the AWS emulator needs moto\'s server and boto3: pip install "moto[server]>=5" boto3'
GCP_INSTALL_HINT = 'the GCP emulator needs the Docker SDK and werkzeug: pip install "mayfly-tasks[gcp,emulator]"'

app = typer.Typer(help="Local emulators of the clouds' APIs (tasks run in local Docker).", no_args_is_help=True)


@app.callback()
def emulator() -> None:
    """Local emulators of the clouds' APIs (tasks run in local Docker)."""


def _say(line: str = "") -> None:
    typer.echo(line)
    sys.stdout.flush()


@contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, for the duration of the block."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command("aws")
def aws(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (also always the Docker bridge gateway).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")] = 4566,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Create this target's resources and print its 'mayfly target add' command."),
    ] = None,
    region: Annotated[str, typer.Option("--region", help="Region of the target's resources.")] = "us-east-1",
    network: Annotated[str, typer.Option("--network", help="Docker network the task containers join.")] = "bridge",
    container_host: Annotated[
        str | None,
        typer.Option("--container-host", help="Host name or IP task containers use for the emulator (default: auto)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request and task.")] = False,
) -> None:
    """Serve AWS for Mayfly on this machine: ECS tasks run in local Docker; SQS, S3, Logs, IAM by moto."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger("mayfly.providers.ecs.emulator").setLevel(logging.DEBUG)
    try:
        from mayfly.providers.ecs.emulator import AwsEmulator
    except ImportError as exc:
        exit_with_error(MissingDependency(f"{INSTALL_HINT} ({exc})"))

    emu = AwsEmulator(host, port, region=region, network=network, container_host=container_host)
    with _stop_on_signal() as stop:
        try:
            emu.start()
        except MayflyError as err:
            exit_with_error(err)
        try:
            _serve(emu, target, region, stop)
        except MayflyError as err:
            emu.stop()
            exit_with_error(err)
        emu.stop()
    _say("stopped")


@app.command("gcp")
def gcp(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (also always the Docker bridge gateway).")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65533,
            help="Port of the Cloud Run and Logging API; Pub/Sub on the next, Cloud Storage on the one after "
            "(0: free ports).",
        ),
    ] = 8780,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Create this target's resources and print its 'mayfly target add' command."),
    ] = None,
    project: Annotated[str, typer.Option("--project", help="Project id of the target's resources.")] = "mayfly-local",
    region: Annotated[str, typer.Option("--region", help="Region of the target's jobs.")] = "europe-west1",
    network: Annotated[str, typer.Option("--network", help="Docker network the task containers join.")] = "bridge",
    container_host: Annotated[
        str | None,
        typer.Option("--container-host", help="Host name or IP task containers use for the emulator (default: auto)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request and task.")] = False,
) -> None:
    """Serve Google Cloud for Mayfly on this machine: Cloud Run jobs run in local Docker; Pub/Sub, GCS, Logging."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        for name in ("mayfly.providers.cloudrun.emulator", "mayfly.providers.emulation"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        from mayfly.core.config import Home
        from mayfly.providers.cloudrun.emulator import GcpEmulator
        from mayfly.providers.cloudrun.emulator.bootstrap import resource_prefix
    except ImportError as exc:
        exit_with_error(MissingDependency(f"{GCP_INSTALL_HINT} ({exc})"))
    try:
        if target is not None:
            resource_prefix(target)  # a bad name is refused before anything starts
        state_dir = Home.from_env().root / "emulators" / "gcp"
        emu = GcpEmulator(host, port, network=network, container_host=container_host, state_dir=state_dir)
    except MayflyError as err:
        exit_with_error(err)
    with _stop_on_signal() as stop:
        try:
            emu.start()
        except MayflyError as err:
            exit_with_error(err)
        try:
            _serve_gcp(
                emu.endpoints,
                (lambda: emu.bootstrap_target(target, project=project, region=region)) if target is not None else None,
                target,
                stop,
            )
        except MayflyError as err:
            emu.stop()
            exit_with_error(err)
        emu.stop()
    _say("stopped")


def _serve_gcp(
    endpoints: Any, bootstrap: Callable[[], dict[str, Any]] | None, target: str | None, stop: threading.Event
) -> None:
    """Print the endpoints (and create the target with ``bootstrap``), then serve until ``stop`` is set."""
    _say("GCP emulator: Cloud Run jobs (executions run as local Docker containers), Cloud Logging, Pub/Sub, GCS")
    _say(f"Cloud Run + Logging API: {endpoints.run}")
    _say(f"Pub/Sub emulator: {endpoints.pubsub}  (export PUBSUB_EMULATOR_HOST={endpoints.pubsub})")
    _say(f"Cloud Storage: {endpoints.storage}  (the same URL on this host and in task containers)")
    if bootstrap is not None:
        settings = bootstrap()
        _say()
        _say(f"target {target}: topics, subscriptions, dead letters, bucket and a throwaway signing key created;")
        _say("add it with:")
        _say(f"mayfly target add {target} --provider cloudrun --settings {shlex.quote(json.dumps(settings))}")
    _say()
    _say("Ctrl-C to stop (the task containers it started are removed)")
    while not stop.wait(0.5):
        pass


def _serve(emu: AwsEmulator, target: str | None, region: str, stop: threading.Event) -> None:
    """Print the endpoint (and create the target), then serve until ``stop`` is set."""
    listening = ", ".join(f"{address}:{emu.port}" for address in (emu.reachability.bind if emu.reachability else []))
    _say("AWS emulator: ECS (tasks run as local Docker containers) + moto (SQS, S3, CloudWatch Logs, IAM, ...)")
    _say(f"endpoint: {emu.endpoint_url}")
    _say(f"listening on: {listening}")
    _say("  use the endpoint on this host, in targets and in task containers alike; any credentials work:")
    _say(f"  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={region}")
    if target is not None:
        settings = emu.bootstrap_target(target, region)
        _say()
        _say(f"target {target}: cluster, queues, bucket, log group and execution role created; add it with:")
        _say(f"mayfly target add {target} --provider ecs --settings {shlex.quote(json.dumps(settings))}")
    _say()
    _say("Ctrl-C to stop (the task containers it started are removed)")
    while not stop.wait(0.5):
        pass


AZURE_INSTALL_HINT = 'the Azure emulator needs werkzeug and the Azure SDKs: pip install "mayfly-tasks[azure,emulator]"'


@app.command("azure")
def azure(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (also always the Docker bridge gateway).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="ARM port (0: any free port).")] = 4580,
    blob_port: Annotated[
        int, typer.Option("--blob-port", min=0, max=65535, help="Azurite's blob port (0: any free port).")
    ] = 10000,
    queue_port: Annotated[
        int, typer.Option("--queue-port", min=0, max=65535, help="Azurite's queue port (0: any free port).")
    ] = 10001,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Create this target's queues and container and print its 'mayfly target add'."),
    ] = None,
    location: Annotated[str, typer.Option("--location", help="Azure region the target records.")] = "westeurope",
    network: Annotated[str, typer.Option("--network", help="Docker network the containers join.")] = "bridge",
    container_host: Annotated[
        str | None,
        typer.Option("--container-host", help="Host name or IP containers use for the emulator (default: auto)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every request and container group.")] = False,
) -> None:
    """Serve Azure for Mayfly on this machine: container groups run in local Docker; queues and blobs by Azurite."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        for name in ("mayfly.providers.aci.emulator", "mayfly.providers.emulation"):  # requests are logged there
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        from mayfly.providers.aci.emulator.bootstrap import check_target_name
        from mayfly.providers.aci.emulator.local import AzureEmulator
    except ImportError as exc:
        exit_with_error(MissingDependency(f"{AZURE_INSTALL_HINT} ({exc})"))

    try:
        if target is not None:
            check_target_name(target)
    except MayflyError as err:
        exit_with_error(err)
    emu = AzureEmulator(
        host,
        port,
        blob_port=blob_port,
        queue_port=queue_port,
        network=network,
        container_host=container_host,
        location=location,
    )
    with _stop_on_signal() as stop:
        try:
            emu.start()
        except MayflyError as err:
            exit_with_error(err)
        try:
            _serve_azure(emu, target, stop)
        except MayflyError as err:
            emu.stop()
            exit_with_error(err)
        emu.stop()
    _say("stopped")


def _serve_azure(emu: AzureEmulator, target: str | None, stop: threading.Event) -> None:
    """Print the endpoints (and create the target), then serve until ``stop`` is set."""
    reach = emu.arm.reachability
    listening = ", ".join(f"{address}:{emu.arm.port}" for address in (reach.bind if reach else []))
    _say("Azure emulator: ARM for container groups (containers run in local Docker) + Azurite (queues, blobs)")
    _say(f"arm endpoint: {emu.arm_endpoint}")
    _say(f"listening on: {listening}")
    _say(f"blob endpoint: {emu.blob_endpoint}")
    _say(f"queue endpoint: {emu.queue_endpoint}")
    _say(f"  storage account {emu.account_name}, Azurite's well-known key; any bearer token works for ARM")
    if target is not None:
        settings = emu.bootstrap_target(target)
        data = settings.model_dump(mode="json", exclude_unset=True)
        _say()
        _say(f"target {target}: queues and blob container created; add it with:")
        _say(f"mayfly target add {target} --provider aci --settings {shlex.quote(json.dumps(data))}")
    _say()
    _say("Ctrl-C to stop (the containers it started are removed)")
    while not stop.wait(0.5):
        pass

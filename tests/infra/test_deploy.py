"""The deploy engine up to the Automation API boundary, with a temporary ``file://`` backend.

The Pulumi CLI cannot be installed here, so nothing runs ``pulumi up``. What is
tested: the preconditions (no CLI -> one line), the workspace Mayfly gives Pulumi
(backend, passphrase, work directory), the translation of Automation API errors,
the real Automation API driving a stand-in ``pulumi`` executable that answers as
the CLI does when a stack is locked or missing, the image tag mapping, and the
recording of stack outputs into a target.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import CommandResult, ConcurrentUpdateError, StackNotFoundError
from pulumi.automation.errors import CommandError, create_command_error
from pulumi.automation.events import EngineEvent

from mayfly.cli.context import open_app
from mayfly.core.config import Home
from mayfly.core.errors import CredentialsMissing, InvalidInput
from mayfly.infra.cloud import cloud_for
from mayfly.infra.deploy import (
    DeployEngine,
    first_error_line,
    record_target,
    target_settings,
    to_deploy_event,
    translate,
)
from mayfly.infra.errors import (
    ConcurrentUpdate,
    DeployFailed,
    ImagePushFailed,
    PulumiNotInstalled,
    PulumiSdkMissing,
    StackNotFound,
)
from mayfly.infra.images import RegistryAuth, push_images, remote_image, remote_tag, runtime_tags
from mayfly.infra.stackfile import Stack, parse_stack
from mayfly.providers.ecs.settings import EcsSettings
from mayfly.providers.ecs.taskdefs import task_image
from mayfly.runtimes import catalog

REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/aws-dev-images-1a2b3c4"


def stack(**extra: Any) -> Stack:
    return parse_stack({"cloud": "aws", "name": "aws-dev", "region": "eu-west-1", **extra}, "test.yaml")


@pytest.fixture
def engine(home: Path, monkeypatch: pytest.MonkeyPatch) -> DeployEngine:
    for var in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(var, raising=False)
    return DeployEngine(Home.from_env().ensure())


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# ---------------------------------------------------------------- preconditions


def test_missing_pulumi_cli_is_one_line_before_anything_else(engine: DeployEngine, no_pulumi: None) -> None:
    with pytest.raises(PulumiNotInstalled) as info:
        engine.preflight(stack(), "deploy")
    assert info.value.message == (
        "`mayfly deploy` needs the Pulumi CLI, which is not on PATH: install it "
        "(see https://www.pulumi.com/docs/install/, e.g. `curl -fsSL https://get.pulumi.com | sh`) "
        "and open a new shell"
    )
    assert int(info.value.exit_code) == 6
    # Nothing was written: the check ran before the stack was saved or a workspace created.
    assert not engine.deploy_dir.exists()
    assert not engine.default_backend_dir.exists()


def test_deploy_without_the_cli_stops_before_the_stack_is_touched(engine: DeployEngine, no_pulumi: None) -> None:
    with pytest.raises(PulumiNotInstalled, match=r"^`mayfly deploy` needs the Pulumi CLI"):
        engine.up(stack())
    assert not engine.work_dir("aws-dev").exists()


def test_a_missing_cloud_package_names_that_clouds_extra(
    engine: DeployEngine, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pulumi_aws" else real_find_spec(name, *a)
    )
    with pytest.raises(PulumiSdkMissing) as info:
        engine.preflight(stack(), "deploy")
    assert (
        info.value.message
        == "deploying needs the Python package 'pulumi_aws': pip install \"mayfly-tasks[aws,deploy]\""
    )
    assert not engine.deploy_dir.exists()


def test_missing_aws_credentials_is_one_line(
    engine: DeployEngine, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(CredentialsMissing) as info:
        engine.preflight(stack(), "deploy")
    assert info.value.message == (
        "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or run `aws sso login` / `aws configure`"
    )


# ---------------------------------------------------------------- workspace


def test_default_backend_is_a_file_backend_in_the_home(engine: DeployEngine) -> None:
    s = stack()
    assert engine.backend_url(s) == f"file://{engine.home.root / 'pulumi'}"
    opts = engine.workspace_options(s)
    assert opts.work_dir == str(engine.home.root / "deploy" / "aws-dev")
    assert opts.project_settings is not None
    assert opts.project_settings.name == "mayfly"
    assert opts.project_settings.backend is not None
    assert opts.project_settings.backend.url == engine.backend_url(s)
    assert (engine.home.root / "pulumi").is_dir()


def test_passphrase_file_is_created_once_with_mode_0600(engine: DeployEngine) -> None:
    env = engine.env_vars(stack())
    path = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert path == engine.home.root / "pulumi-passphrase"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert len(first.strip()) >= 32
    engine.env_vars(stack(backend="s3://state-bucket"))  # a DIY backend needs it too
    assert path.read_text() == first


def test_a_passphrase_the_user_sets_is_left_alone(engine: DeployEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "mine")
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in engine.env_vars(stack())
    assert not engine.passphrase_file.exists()


def test_pulumi_cloud_backend_needs_no_passphrase(engine: DeployEngine) -> None:
    env = engine.env_vars(stack(backend="https://api.pulumi.com"))
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    assert engine.backend_url(stack(backend="https://api.pulumi.com")) == "https://api.pulumi.com"


def test_stacks_are_found_by_name_after_a_deploy_saved_them(
    engine: DeployEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StackNotFound) as info:
        engine.load("aws-dev")
    assert info.value.message == (
        f"no stack 'aws-dev' deployed from this Mayfly home ({engine.home.root}) and no stacks/aws-dev.yaml here: "
        "deploy it first with `mayfly deploy stacks/aws-dev.yaml`"
    )
    saved = stack(backend="s3://state", capacity=4)
    engine.save(saved)
    assert engine.load("aws-dev") == saved
    (tmp_path / "other.yaml").write_text("cloud: aws\nname: other\nregion: us-east-1\n")
    assert engine.load("other.yaml").name == "other"


# ---------------------------------------------------------------- the Automation API, driven for real


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``pulumi`` on PATH: answers ``version``, then fails as the CLI does (stderr in $FAKE_STDERR)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pulumi.log"
    script = bin_dir / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$* | passphrase_file=$PULUMI_CONFIG_PASSPHRASE_FILE" >> {log}\n'
        'if [ "$1" = "version" ]; then echo v3.200.0; exit 0; fi\n'
        'printf "%s\\n" "$FAKE_STDERR" >&2\n'
        "exit 255\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return log


def test_a_locked_stack_is_a_concurrent_update(
    engine: DeployEngine, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FAKE_STDERR",
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
        "or delete the lock file with `pulumi cancel`.",
    )
    with pytest.raises(ConcurrentUpdate) as info:
        engine.up(stack())
    assert info.value.message.startswith("stack 'aws-dev' is locked by another update; wait for it to finish")
    assert int(info.value.exit_code) == 4
    calls = fake_pulumi.read_text().splitlines()
    assert calls[0].startswith("version")
    assert calls[1] == (f"--non-interactive stack select --stack aws-dev | passphrase_file={engine.passphrase_file}")
    # The workspace Pulumi saw: the project with the home's file backend, and the saved stack file.
    project = (engine.work_dir("aws-dev") / "Pulumi.yaml").read_text()
    assert f"url: file://{engine.home.root / 'pulumi'}" in project
    assert json.loads((engine.work_dir("aws-dev") / "stack.json").read_text())["name"] == "aws-dev"


def test_a_missing_stack_is_stack_not_found(
    engine: DeployEngine, fake_pulumi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STDERR", "error: no stack named 'aws-dev' found")
    with pytest.raises(StackNotFound) as info:
        engine.outputs(stack())
    assert info.value.message == "stack 'aws-dev' does not exist in its backend: deploy it with `mayfly deploy`"
    assert "stack select --stack aws-dev |" in fake_pulumi.read_text()


# ---------------------------------------------------------------- error translation


def _result(stderr: str = "", stdout: str = "") -> CommandResult:
    return CommandResult(stdout=stdout, stderr=stderr, code=255)


def test_automation_errors_become_mayfly_errors() -> None:
    locked = translate(ConcurrentUpdateError(_result("[409] Conflict")), stack="s", doing="deploy")
    assert isinstance(locked, ConcurrentUpdate)
    assert locked.code == "concurrent_update"
    missing = translate(StackNotFoundError(_result("no stack named 's' found")), stack="s", doing="outputs")
    assert isinstance(missing, StackNotFound)
    assert int(missing.exit_code) == 3
    no_cli = translate(FileNotFoundError(2, "No such file or directory", "pulumi"), stack="s", doing="preview")
    assert isinstance(no_cli, PulumiNotInstalled)
    assert no_cli.message.startswith("`mayfly preview` needs the Pulumi CLI")


def test_pulumi_classifies_cli_output_and_we_translate_it() -> None:
    # create_command_error is the Automation API's own classifier of the CLI's stderr.
    err = create_command_error(_result("error: [409] Conflict: Another update is currently in progress."))
    assert isinstance(translate(err, stack="s", doing="deploy"), ConcurrentUpdate)
    err = create_command_error(_result("error: no stack named 'dev' found"))
    assert isinstance(translate(err, stack="dev", doing="destroy"), StackNotFound)


def test_a_failed_update_reports_its_first_real_error_line() -> None:
    stdout = (
        "Updating (aws-dev):\n"
        " +  aws:sqs:Queue aws-dev-tasks creating (0s) error: 1 error occurred:\n"
        "Diagnostics:\n"
        "  aws:sqs:Queue (aws-dev-tasks):\n"
        "    error: 1 error occurred:\n"
        "    \t* creating SQS Queue (aws-dev-tasks-1a2b): operation error SQS: CreateQueue, QueueDeletedRecently\n"
        "  pulumi:pulumi:Stack (mayfly-aws-dev):\n"
        "    error: update failed\n"
    )
    err = translate(CommandError(_result(stdout=stdout)), stack="aws-dev", doing="deploy")
    assert isinstance(err, DeployFailed)
    assert err.message == (
        "deploy aws-dev failed: creating SQS Queue (aws-dev-tasks-1a2b): operation error SQS: CreateQueue, "
        "QueueDeletedRecently"
    )


def test_credential_failures_are_credentials_missing() -> None:
    stderr = "error: pulumi:providers:aws resource 'default' has a problem: No valid credential sources found"
    err = translate(CommandError(_result(stderr)), stack="aws-dev", doing="preview", cloud=cloud_for("aws"))
    assert isinstance(err, CredentialsMissing)
    assert err.message.startswith(
        "preview aws-dev: AWS credentials missing or rejected (pulumi:providers:aws resource 'default' has a problem"
    )
    assert err.message.endswith("set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`")


def test_a_wrong_passphrase_says_which_variable_to_set() -> None:
    err = translate(
        CommandError(_result("error: getting secrets manager: incorrect passphrase")), stack="s", doing="deploy"
    )
    assert isinstance(err, DeployFailed)
    assert "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)" in err.message


def test_other_exceptions_are_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        translate(ZeroDivisionError(), stack="s", doing="deploy")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("error: update failed\n", None),
        ("  error: preview failed\nerror: something specific\n", "something specific"),
        ("error: 2 errors occurred:\n\n  * first thing\n  * second thing\n", "first thing"),
        ("nothing here", None),
    ],
)
def test_first_error_line(text: str, line: str | None) -> None:
    assert first_error_line(text) == line


def test_engine_events_become_deploy_events() -> None:
    pre = EngineEvent.from_json(
        {
            "sequence": 1,
            "timestamp": 1,
            "resourcePreEvent": {
                "metadata": {
                    "op": "create",
                    "urn": "urn:pulumi:aws-dev::mayfly::mayfly:aws:Target$aws:sqs/queue:Queue::aws-dev-tasks",
                    "type": "aws:sqs/queue:Queue",
                    "provider": "",
                }
            },
        }
    )
    event = to_deploy_event(pre)
    assert event is not None
    assert (event.kind, event.status, event.op, event.type, event.name) == (
        "resource",
        "started",
        "create",
        "aws:sqs/queue:Queue",
        "aws-dev-tasks",
    )
    summary = EngineEvent.from_json(
        {
            "sequence": 2,
            "timestamp": 2,
            "summaryEvent": {
                "maybeCorrupt": False,
                "durationSeconds": 3,
                "resourceChanges": {"create": 24, "same": 1},
                "PolicyPacks": {},
            },
        }
    )
    done = to_deploy_event(summary)
    assert done is not None
    assert done.changes == {"create": 24, "same": 1}


# ---------------------------------------------------------------- images


def test_runtime_images_map_to_the_tags_the_ecs_provider_runs() -> None:
    assert remote_image("mayfly/runtime-python-3.11:1", REPO) == f"{REPO}:runtime-python-3.11-1"
    for runtime in catalog():
        expected = f"{REPO}:runtime-{runtime.name}-{runtime.version}"
        assert remote_image(runtime.image, REPO) == expected
        # What the ecs provider computes from the target's image_prefix, for the same local image.
        assert task_image(runtime.image, REPO) == expected


@pytest.mark.parametrize("bad", ["mayfly/runtime-shell", "busybox:1", "mayfly/runtime-x:a/b", "mayfly/runtime-x:"])
def test_only_versioned_runtime_images_have_a_remote_tag(bad: str) -> None:
    with pytest.raises(InvalidInput):
        remote_tag(bad)


def test_runtime_tags_skip_latest_and_other_images() -> None:
    tags = ["mayfly/runtime-shell:1", "mayfly/runtime-shell:latest", "busybox:latest", "mayfly/runtime-python-3.11:2"]
    assert runtime_tags(tags) == ["mayfly/runtime-python-3.11:2", "mayfly/runtime-shell:1"]


class _Image:
    def __init__(self, client: _Client, ref: str) -> None:
        self.client, self.ref = client, ref

    def tag(self, repository: str, tag: str) -> bool:
        self.client.tagged.append((self.ref, f"{repository}:{tag}"))
        return True


class _Api:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def push(self, repository: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.client.pushed.append((f"{repository}:{kwargs['tag']}", kwargs["auth_config"]))
        yield {"status": "Pushing"}
        yield self.client.last_line


class _Images:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def get(self, ref: str) -> _Image:
        return _Image(self.client, ref)


class _Client:
    """The slice of the Docker SDK that push_images uses (the engine here has no registry to push to)."""

    def __init__(self, last_line: dict[str, Any]) -> None:
        self.last_line = last_line
        self.tagged: list[tuple[str, str]] = []
        self.pushed: list[tuple[str, dict[str, str]]] = []
        self.images = _Images(self)
        self.api = _Api(self)


def test_push_tags_each_image_into_the_repository_with_the_registry_login() -> None:
    client = _Client({"aux": {"Tag": "x", "Digest": "sha256:abc"}})
    auth = RegistryAuth("AWS", "token", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    pushed = push_images(client, ["mayfly/runtime-shell:1"], REPO, auth)
    assert client.tagged == [("mayfly/runtime-shell:1", f"{REPO}:runtime-shell-1")]
    assert client.pushed == [(f"{REPO}:runtime-shell-1", auth.auth_config())]
    assert [(p.remote, p.digest) for p in pushed] == [(f"{REPO}:runtime-shell-1", "sha256:abc")]


def test_a_push_error_is_one_line() -> None:
    client = _Client({"error": "denied: not authorized to perform ecr:InitiateLayerUpload"})
    with pytest.raises(ImagePushFailed) as info:
        push_images(client, ["mayfly/runtime-shell:1"], REPO, RegistryAuth("AWS", "t", "https://r"))
    assert info.value.message == (
        f"pushing mayfly/runtime-shell:1 to {REPO}:runtime-shell-1: "
        "denied: not authorized to perform ecr:InitiateLayerUpload"
    )


# ---------------------------------------------------------------- outputs -> target


def _outputs() -> dict[str, Any]:
    settings = {
        "region": "eu-west-1",
        "cluster": "aws-dev-cluster-1a2b",
        "subnets": ["subnet-0a", "subnet-0b"],
        "security_groups": ["sg-0123"],
        "assign_public_ip": True,
        "execution_role_arn": "arn:aws:iam::123456789012:role/aws-dev-execution-1a2b",
        "task_role_arn": "arn:aws:iam::123456789012:role/aws-dev-task-1a2b",
        "log_group": "aws-dev-logs-1a2b",
        "log_stream_prefix": "mayfly",
        "bucket": "aws-dev-bucket-1a2b",
        "tasks_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/aws-dev-tasks-1a2b",
        "control_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/aws-dev-control-1a2b",
        "events_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/aws-dev-events-1a2b",
        "image_prefix": REPO,
        "capacity_provider": "FARGATE_SPOT",
    }
    return {"settings": settings, "repository_url": REPO}


def test_outputs_are_recorded_as_an_ecs_target(home: Path) -> None:
    mf = open_app()
    try:
        target = record_target(mf, stack(capacity=7), _outputs())
        assert (target.name, target.provider, target.capacity, target.embedded_runner) == ("aws-dev", "ecs", 7, True)
        assert EcsSettings.model_validate(target.settings_dict) == EcsSettings.model_validate(_outputs()["settings"])
        # A second deploy replaces the target; with the runner in the cloud, `mayfly server` runs none for it.
        runner_on = stack(capacity=7, runner={"enabled": True, "image": "r:1"}, target="prod")
        again = record_target(mf, runner_on, _outputs())
        assert (again.name, again.embedded_runner) == ("prod", False)
        assert record_target(mf, runner_on, _outputs()).name == "prod"
    finally:
        mf.close()


def test_outputs_that_are_not_ecs_settings_are_refused(home: Path) -> None:
    broken = _outputs()
    del broken["settings"]["subnets"]
    with pytest.raises(DeployFailed) as info:
        target_settings(stack(), broken)
    assert info.value.message == "outputs of stack 'aws-dev' are not valid ecs settings: subnets: Field required"
    with pytest.raises(DeployFailed, match=r"^stack 'aws-dev' has no 'settings' output"):
        target_settings(stack(), {})


def test_the_component_settings_output_is_what_the_engine_records(build: Any) -> None:
    built = build("aws-dev")
    assert target_settings(stack(), {"settings": built.settings}) == EcsSettings.model_validate(
        built.settings
    ).model_dump(mode="json", exclude_defaults=True)
    assert cloud_for("aws").provider == "ecs"

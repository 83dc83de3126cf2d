"""A cloud is a plug-in: a throwaway one, installed from this test, deploys through `mayfly deploy`.

The ``toy`` cloud below is written to a temporary directory as a module with a
``.dist-info`` entry point in the ``mayfly.providers`` group, put on ``sys.path``
and loaded the way a third party's package would be (nothing in the project names
it). It registers a provider and a deploy plug-in; ``mayfly preview | deploy |
outputs | destroy`` then run its Pulumi program under ``pulumi.runtime.set_mocks``
(the ``mocked_pulumi`` fixture) and record, update and remove its target. The AWS
plug-in goes through the very same path, and `mayfly` still starts and validates
stack files when Pulumi is not installed at all.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.cli.context import open_local
from mayfly.core.errors import TargetNotFound
from mayfly.core.plugins import default_plugins
from mayfly.core.records import Target
from mayfly.infra.images import remote_tag
from mayfly.providers.ecs.settings import EcsSettings

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

TOY_MODULE = '''
"""A throwaway cloud: provider ``toy`` and its deploy plug-in (cloud ``toy``)."""

from typing import Literal

from pydantic import Field, field_validator

from mayfly.core import hookimpl
from mayfly.core.models import ContainerState, ContainerStatus, LaunchResult
from mayfly.core.provider import Provider, ProviderSettings
from mayfly.infra.cloud import Cloud
from mayfly.infra.images import ImageRegistry, PushedImage, remote_tag
from mayfly.infra.stackfile import StackBase, StrictModel


class ToySettings(ProviderSettings):
    region: str
    queue: str
    bucket: str


class ToyProvider(Provider[ToySettings]):
    name = "toy"

    def launch(self, spec):
        return LaunchResult(handle=spec.name)

    def state(self, handle):
        return ContainerState(ContainerStatus.EXITED, exit_code=0)

    def logs(self, handle, *, follow=False):
        return iter(())

    def result(self, handle, max_bytes):
        return None

    def remove(self, handle):
        return None


class ToySection(StrictModel):
    queues: int = Field(default=1, ge=1, le=5)


class ToyStack(StackBase):
    cloud: Literal["toy"]
    toy: ToySection = Field(default_factory=ToySection)

    @field_validator("region")
    @classmethod
    def _region(cls, value):
        if not value.startswith("toy-"):
            raise ValueError(f"{value!r} is not a toy region (like toy-1)")
        return value


PUSHED = []


class ToyRegistry(ImageRegistry):
    def __init__(self, location):
        self.location = location

    def push(self, client, images, progress):
        pushed = []
        for local in images:
            progress(f"pushing {local}")
            pushed.append(PushedImage(local=local, remote=f"{self.location}:{remote_tag(local)}", digest=None))
        PUSHED.extend(pushed)
        return pushed


class ToyCloud(Cloud):
    name = "toy"
    provider = "toy"
    stack_model = ToyStack
    pulumi_plugin = "toy"

    def program(self, stack):
        import pulumi  # lazily, as every deploy plug-in must

        class ToyTarget(pulumi.ComponentResource):
            def __init__(self, name, queues):
                super().__init__("toy:index:Target", name, None, None)
                child = pulumi.ResourceOptions(parent=self)
                self.queues = [
                    pulumi.CustomResource("toy:index:Queue", f"{name}-q{i}", {"size": 10 * i}, opts=child)
                    for i in range(queues)
                ]
                self.bucket = pulumi.CustomResource("toy:index:Bucket", f"{name}-bucket", {"private": True}, opts=child)
                self.register_outputs({})

        def run():
            target = ToyTarget(stack.target_name, stack.toy.queues)
            settings = pulumi.Output.all(target.queues[0].id, target.bucket.id).apply(
                lambda ids: {"region": stack.region, "queue": ids[0], "bucket": ids[1]}
            )
            pulumi.export("settings", settings)
            pulumi.export("registry", f"registry.toy.example/{stack.name}")

        return run

    def image_registry(self, stack, outputs):
        return ToyRegistry(outputs["registry"])


@hookimpl
def mayfly_register_providers(registry):
    registry.add(ToyProvider)


@hookimpl
def mayfly_register_clouds(registry):
    registry.add(ToyCloud)
'''


@pytest.fixture
def toy_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The toy plug-in installed as a distribution in a temporary directory; the plugin set rebuilt."""
    site = tmp_path / "site"
    (site / "toycloud-0.1.dist-info").mkdir(parents=True)
    (site / "mayfly_toycloud.py").write_text(TOY_MODULE)
    (site / "toycloud-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toycloud\nVersion: 0.1\n")
    (site / "toycloud-0.1.dist-info" / "entry_points.txt").write_text("[mayfly.providers]\ntoy = mayfly_toycloud\n")
    monkeypatch.syspath_prepend(str(site))
    # Under pytest only the project's own plug-ins load unless this is set.
    monkeypatch.setenv("MAYFLY_LOAD_ALL_PLUGINS", "1")
    importlib.invalidate_caches()
    default_plugins.cache_clear()
    try:
        assert "toy" in default_plugins().clouds.names()
        yield sys.modules["mayfly_toycloud"]
    finally:
        default_plugins.cache_clear()
        sys.modules.pop("mayfly_toycloud", None)


def _stack_file(tmp_path: Path, text: str, name: str = "toy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _target(name: str) -> Target:
    """The target as recorded now (a fresh app: targets are cached per app)."""
    mf = open_local("test")
    try:
        return mf.targets.get(name)
    finally:
        mf.close()


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.fixture
def runtime_tag(docker_client: Any, busybox_image: str) -> Iterator[str]:
    """A local runtime image tag of this test's own (removed afterwards), so a deploy has one to push."""
    repository = f"mayfly/runtime-toyseam{uuid.uuid4().hex[:8]}"
    docker_client.images.get(busybox_image).tag(repository, tag="1")
    try:
        yield f"{repository}:1"
    finally:
        docker_client.images.remove(f"{repository}:1")


@pytest.mark.docker
def test_a_throwaway_cloud_deploys_previews_and_destroys_through_mayfly_deploy(
    home: Path, tmp_path: Path, toy_cloud: Any, mocked_pulumi: Any, runtime_tag: str
) -> None:
    stack_file = _stack_file(tmp_path, "cloud: toy\nname: toy-dev\nregion: toy-1\ncapacity: 3\n")
    # One component, one queue, one bucket, and the root stack.
    planned = _json(["preview", str(stack_file), "--json"])
    assert planned == {"stack": "toy-dev", "changes": {"create": 4}}
    with pytest.raises(TargetNotFound):
        _target("toy-dev")  # a preview records nothing

    deployed = _json(["deploy", str(stack_file), "--json"])
    assert deployed["changes"] == {"create": 4}
    assert deployed["outputs"]["registry"] == "registry.toy.example/toy-dev"
    # The cloud's registry got every local runtime image, this test's own among them, named its way.
    pushed = {image["local"]: image["remote"] for image in deployed["images"]}
    assert pushed[runtime_tag] == f"registry.toy.example/toy-dev:{remote_tag(runtime_tag)}"
    assert [p.local for p in toy_cloud.PUSHED] == [image["local"] for image in deployed["images"]]
    assert mocked_pulumi.config["toy-dev"] == {"toy:region": "toy-1"}
    target = _target("toy-dev")
    assert (target.provider, target.capacity, target.embedded_runner) == ("toy", 3, True)
    assert target.settings_dict == {"region": "toy-1", "queue": "toy-dev-q0-id", "bucket": "toy-dev-bucket-id"}
    assert (home / "pulumi" / ".mocked" / "toy-dev.json").is_file()

    # The cloud's own section changes the plan: one more queue, the rest unchanged.
    stack_file = _stack_file(tmp_path, "cloud: toy\nname: toy-dev\nregion: toy-1\ncapacity: 5\ntoy: {queues: 2}\n")
    assert _json(["preview", str(stack_file), "--json"])["changes"] == {"create": 1, "same": 4}
    again = _json(["deploy", str(stack_file), "--json", "--skip-images"])
    assert (again["changes"], again["images"]) == ({"create": 1, "same": 4}, [])
    assert _target("toy-dev").capacity == 5
    assert _json(["outputs", "toy-dev", "--json"])["settings"]["queue"] == "toy-dev-q0-id"

    destroyed = _json(["destroy", "toy-dev", "--yes", "--json"])
    assert destroyed == {"stack": "toy-dev", "target": "toy-dev", "changes": {"delete": 5}}
    with pytest.raises(TargetNotFound):
        _target("toy-dev")
    assert not (home / "pulumi" / ".mocked" / "toy-dev.json").exists()


def test_an_unknown_cloud_is_one_line_listing_the_installed_ones(
    home: Path, tmp_path: Path, toy_cloud: Any, mocked_pulumi: Any
) -> None:
    stack_file = _stack_file(tmp_path, "cloud: oracle\nname: o\nregion: eu-frankfurt-1\n")
    result = runner.invoke(app, ["deploy", str(stack_file)])
    assert result.exit_code == 2
    installed = default_plugins().clouds.names()
    assert {"aws", "gcp", "toy"} <= set(installed)
    assert result.stderr == (
        f"Error: {stack_file}: cloud: unknown cloud 'oracle' (supported: {', '.join(installed)})\n"
    )
    assert not (home / "deploy").exists()


def test_a_cloud_section_with_problems_is_one_line_each_before_anything_runs(
    home: Path, tmp_path: Path, toy_cloud: Any, mocked_pulumi: Any
) -> None:
    stack_file = _stack_file(tmp_path, "cloud: toy\nname: toy-dev\nregion: eu-west-1\ntoy: {queues: 9, colour: red}\n")
    result = runner.invoke(app, ["deploy", str(stack_file)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {stack_file}: region: 'eu-west-1' is not a toy region (like toy-1)",
        f"{stack_file}: toy.queues: must be less than or equal to 5, got 9",
        f"{stack_file}: toy.colour: unknown key",
    ]
    assert not (home / "deploy").exists()
    assert not (home / "pulumi").exists()


def test_aws_goes_through_the_same_seam(home: Path, mocked_aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    example = str(ROOT / "stacks" / "aws-example.yaml")
    planned = _json(["preview", example, "--json"])["changes"]
    deployed = _json(["deploy", example, "--json", "--skip-images"])
    assert deployed["changes"] == planned
    assert planned["create"] > 20
    assert mocked_aws.config["aws-dev"] == {"aws:region": "eu-west-1"}
    target = _target("aws-dev")
    settings = EcsSettings.model_validate(deployed["outputs"]["settings"])
    assert (target.provider, EcsSettings.model_validate(target.settings_dict)) == ("ecs", settings)
    assert deployed["outputs"]["repository_url"] == settings.image_prefix
    assert _json(["destroy", "aws-dev", "--yes", "--json"])["changes"] == {"delete": planned["create"]}
    with pytest.raises(TargetNotFound):
        _target("aws-dev")


# Stand-ins for a machine without the `deploy`, `aws` and `gcp` extras: these imports fail as if not installed.
WITHOUT_DEPLOY_EXTRA = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pulumi", "pulumi_aws", "pulumi_gcp", "boto3", "botocore", "google"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NotInstalled())
from mayfly.cli import main

sys.argv = ["mayfly", *sys.argv[1:]]
main()
"""


def test_mayfly_without_pulumi_loads_every_cloud_and_validates_stack_files(home: Path, tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-c", WITHOUT_DEPLOY_EXTRA, "plugins", "--json"], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert (plugins["aws"]["clouds"], plugins["gcp"]["clouds"]) == (["aws"], ["gcp"])
    bad = _stack_file(tmp_path, "cloud: aws\nname: aws-dev\nregion: mars\n")
    refused = subprocess.run(
        [sys.executable, "-c", WITHOUT_DEPLOY_EXTRA, "deploy", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert (refused.returncode, refused.stderr) == (
        2,
        f"Error: {bad}: region: 'mars' is not an AWS region (like eu-west-1)\n",
    )
    bad_gcp = _stack_file(tmp_path, "cloud: gcp\nname: gcp-dev\nregion: europe-west1\ngcp: {project: x}\n", "g.yaml")
    refused = subprocess.run(
        [sys.executable, "-c", WITHOUT_DEPLOY_EXTRA, "deploy", str(bad_gcp)], capture_output=True, text=True, timeout=60
    )
    assert (refused.returncode, refused.stderr) == (
        2,
        f"Error: {bad_gcp}: gcp.project: 'x' is not a Google Cloud project id (6-30 lowercase letters, digits and "
        "'-', starting with a letter)\n",
    )

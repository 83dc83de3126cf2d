"""``mayfly preview | deploy | outputs | destroy`` of an Azure stack through the CLI.

Pulumi runs the real ``mayfly:azure:Target`` program under ``pulumi.runtime.set_mocks``
(the ``mocked_azure`` fixture: no Pulumi CLI and no Azure here); everything else is the real
command: stack-file validation, the credentials check, the engine's settings validation by the
registered ``aci`` provider's model, and the target recorded in SQLite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import CommandResult
from pulumi.automation.errors import create_command_error
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.cli.context import open_local
from mayfly.core.errors import CredentialsMissing, TargetNotFound
from mayfly.core.records import Target
from mayfly.infra.cloud import cloud_for
from mayfly.infra.deploy import deploy, translate
from mayfly.infra.stackfile import load_stack_file
from mayfly.providers.aci.settings import AciSettings

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "stacks" / "azure-example.yaml"
SUB = "00000000-1111-2222-3333-444444444444"  # conftest.AZURE_SUBSCRIPTION
ME = "11111111-2222-3333-4444-555555555555"
ARM_VARS = ("ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_TENANT_ID", "ARM_USE_MSI", "ARM_USE_OIDC", "ARM_OIDC_TOKEN")


def _stack_file(tmp_path: Path, **changes: str) -> Path:
    """The example stack file with this test's subscription (and other lines replaced)."""
    text = EXAMPLE.read_text().replace("subscription: 00000000-0000-0000-0000-000000000000", f"subscription: {SUB}")
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "azure.yaml"
    path.write_text(text)
    return path


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _target(name: str) -> Target:
    mf = open_local("test")
    try:
        return mf.targets.get(name)
    finally:
        mf.close()


@pytest.fixture
def service_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials as a CI job has them: a service principal in ARM_* variables."""
    monkeypatch.setenv("ARM_CLIENT_ID", "22222222-2222-2222-2222-222222222222")
    monkeypatch.setenv("ARM_CLIENT_SECRET", "not-a-real-secret")
    monkeypatch.setenv("ARM_TENANT_ID", "33333333-3333-3333-3333-333333333333")


@pytest.fixture
def no_azure_credentials(mocked_azure: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ARM_* variables and a PATH with the stand-in ``pulumi`` only (no ``az``); returns that bin dir."""
    for var in ARM_VARS:
        monkeypatch.delenv(var, raising=False)
    bin_dir = tmp_path / "pulumi-bin"
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_an_azure_stack_deploys_previews_reads_outputs_and_destroys(
    home: Path, tmp_path: Path, mocked_azure: Any, service_principal: None
) -> None:
    principal = f"principals:\n  - id: {ME}\n    type: User\n  #"
    stack_file = _stack_file(tmp_path, **{"principals: []                #": principal})
    planned = _json(["preview", str(stack_file), "--json"])
    # The component, the group, storage (account, container, policy, 6 queues), registry, 2 identities,
    # the custom role, 6 role assignments for the identities and 5 for the listed principal, and the stack.
    assert planned == {"stack": "azure-dev", "changes": {"create": 27}}
    with pytest.raises(TargetNotFound):
        _target("azure-dev")  # a preview records nothing

    deployed = _json(["deploy", str(stack_file), "--json", "--skip-images"])
    assert deployed["changes"] == {"create": 27}
    assert mocked_azure.config["azure-dev"] == {
        "azure-native:location": "westeurope",
        "azure-native:subscriptionId": SUB,
    }
    outputs = deployed["outputs"]
    settings = AciSettings.model_validate(outputs["settings"])
    target = _target("azure-dev")
    assert (target.provider, target.capacity, target.embedded_runner) == ("aci", 10, True)
    assert AciSettings.model_validate(target.settings_dict) == settings
    assert (settings.subscription_id, settings.location, settings.resource_group) == (
        SUB,
        "westeurope",
        "mayfly-azure-dev",
    )
    assert settings.storage_account == outputs["storage_account"]
    assert settings.image_prefix == f"{outputs['registry_server']}/mayfly"
    assert settings.pull_identity_id == outputs["pull_identity_id"]
    assert settings.runner_client_id is None  # the local runner uses the user's own `az login`
    assert sorted(outputs["queues"]) == sorted(
        f"azure-dev-{kind}{suffix}" for kind in ("tasks", "control", "events") for suffix in ("", "-poison")
    )

    # A second deploy changes nothing; the runner turned on adds its container group only.
    assert _json(["preview", str(stack_file), "--json"])["changes"] == {"same": 27}
    with_runner = _stack_file(
        tmp_path,
        **{
            "principals: []                #": principal,
            "  enabled: false": "  enabled: true\n  image: example.azurecr.io/mayfly:runner",
        },
    )
    again = _json(["deploy", str(with_runner), "--json", "--skip-images"])
    assert again["changes"] == {"create": 1, "same": 27}
    assert again["outputs"]["runner_group_name"] == "azure-dev-runner"
    assert _target("azure-dev").embedded_runner is False  # the runner in Azure serves the queue
    assert _json(["outputs", "azure-dev", "--json"])["settings"] == outputs["settings"]

    destroyed = _json(["destroy", "azure-dev", "--yes", "--json"])
    assert destroyed == {"stack": "azure-dev", "target": "azure-dev", "changes": {"delete": 28}}
    with pytest.raises(TargetNotFound):
        _target("azure-dev")


def test_without_azure_credentials_a_deploy_is_one_line_and_creates_nothing(
    home: Path, tmp_path: Path, no_azure_credentials: Path
) -> None:
    result = runner.invoke(app, ["deploy", str(_stack_file(tmp_path))])
    assert result.exit_code == CredentialsMissing("").exit_code
    assert result.stderr == (
        "Error: no Azure credentials found: run `az login` (and `az account set --subscription SUBSCRIPTION`), "
        "or set ARM_CLIENT_ID, ARM_CLIENT_SECRET and ARM_TENANT_ID for a service principal\n"
    )
    assert not (home / "pulumi" / ".mocked").exists()
    with pytest.raises(TargetNotFound):
        _target("azure-dev")


def test_an_azure_cli_that_is_not_logged_in_is_one_line(home: Path, tmp_path: Path, no_azure_credentials: Path) -> None:
    az = no_azure_credentials / "az"  # answers `az account show` as the Azure CLI does before `az login`
    az.write_text("#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n")
    az.chmod(0o755)
    result = runner.invoke(app, ["preview", str(_stack_file(tmp_path))])
    assert result.exit_code == CredentialsMissing("").exit_code
    assert result.stderr.startswith("Error: the Azure CLI is not logged in: run `az login`")
    assert len(result.stderr.splitlines()) == 1


def test_pulumi_credential_failures_on_azure_say_how_to_log_in() -> None:
    output = (
        "error: building ARM config: obtain subscription() from Azure CLI: ERROR: Please run 'az login' to "
        "setup account.\n"
    )
    exc = create_command_error(CommandResult(stdout="", stderr=output, code=1))
    translated = translate(exc, stack="azure-dev", doing="deploy", cloud=cloud_for("azure"))
    assert isinstance(translated, CredentialsMissing)
    assert translated.message.startswith("deploy azure-dev: Azure credentials missing or rejected (building ARM")
    assert translated.message.endswith("ARM_CLIENT_SECRET and ARM_TENANT_ID for a service principal")


class _Pushes:
    """The slice of the Docker SDK a deploy's image push uses; it records instead of reaching a registry."""

    def __init__(self, local: list[str]) -> None:
        self.local = local
        self.tagged: list[tuple[str, str]] = []
        self.pushed: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Image:
            def __init__(self, tags: list[str]) -> None:
                self.tags = tags

            def tag(self, repository: str, tag: str) -> bool:
                outer.tagged.append((self.tags[0], f"{repository}:{tag}"))
                return True

        class Images:
            def list(self, filters: dict[str, str]) -> list[Image]:
                return [Image([tag]) for tag in outer.local]

            def get(self, ref: str) -> Image:
                return Image([ref])

        class Api:
            def push(self, repository: str, **kwargs: Any) -> Any:
                outer.pushed.append((f"{repository}:{kwargs['tag']}", kwargs["auth_config"]))
                yield {"aux": {"Tag": kwargs["tag"], "Digest": "sha256:" + "0" * 64}}

        self.images, self.api = Images(), Api()


def test_a_deploy_pushes_the_runtime_images_into_the_stacks_registry_with_an_entra_token(
    home: Path, tmp_path: Path, no_azure_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "az-calls"
    # Answers as the Azure CLI does after `az login`: `account show` succeeds, `acr login --expose-token`
    # prints an ACR token (and the arguments are kept to check how it was asked).
    az = no_azure_credentials / "az"
    az.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'if [ "$1" = acr ]; then echo \'{"accessToken": "acr-token", "loginServer": "ignored"}\'; fi\n'
    )
    az.chmod(0o755)
    stack = load_stack_file(_stack_file(tmp_path))
    client = _Pushes(["mayfly/runtime-python-3.11:1", "mayfly/runtime-shell:2"])
    mf = open_local("test")
    try:
        result = deploy(mf, stack, docker_client=client)
    finally:
        mf.close()
    server = result.outputs["registry_server"]
    assert calls.read_text().splitlines() == [
        "account show --output none",
        f"acr login --name {result.outputs['registry_name']} --expose-token --output json",
    ]
    auth = {"username": "00000000-0000-0000-0000-000000000000", "password": "acr-token", "serveraddress": server}
    assert client.pushed == [
        (f"{server}/mayfly/runtime-python-3.11:1", auth),
        (f"{server}/mayfly/runtime-shell:2", auth),
    ]
    assert [(i.local, i.remote) for i in result.images] == [
        ("mayfly/runtime-python-3.11:1", f"{server}/mayfly/runtime-python-3.11:1"),
        ("mayfly/runtime-shell:2", f"{server}/mayfly/runtime-shell:2"),
    ]
    assert result.registry == f"{server}/mayfly" == AciSettings.model_validate(result.outputs["settings"]).image_prefix
    assert _target("azure-dev").provider == "aci"

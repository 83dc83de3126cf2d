"""``mayfly deploy | preview | outputs | destroy`` of a ``cloud: gcp`` stack, through the CLI.

The Pulumi program is the real one (``mayfly:gcp:Target``) run under Pulumi's mocks (the
``mocked_gcp`` fixture; no Pulumi CLI and no Google here). Everything else is real: the stack
file's validation, the credentials check, the settings validated by the registered ``cloudrun``
provider's model, the target recorded in SQLite.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import CommandResult
from pulumi.automation.errors import CommandError
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.cli.context import open_local
from mayfly.core.errors import CredentialsMissing, TargetNotFound
from mayfly.core.records import Target
from mayfly.infra.cloud import cloud_for
from mayfly.infra.clouds import gcp as gcp_plugin
from mayfly.infra.deploy import translate
from mayfly.providers.cloudrun.settings import CloudRunSettings

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "stacks" / "gcp-example.yaml"


def _target(name: str) -> Target:
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
def no_google_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no Google credentials anywhere: no variables, no ADC file, not a Google VM."""
    for var in gcp_plugin.CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud-config"))
    monkeypatch.setattr(gcp_plugin, "PRODUCT_NAME_FILE", tmp_path / "no-dmi" / "product_name")


@pytest.fixture
def adc_login(no_google_credentials: None, tmp_path: Path) -> Path:
    """What `gcloud auth application-default login` leaves behind (never read here: Pulumi is mocked)."""
    adc = tmp_path / "gcloud-config" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})
    )
    return adc


def test_the_gcp_example_deploys_previews_and_destroys_through_mayfly_deploy(
    home: Path, tmp_path: Path, mocked_gcp: Any, adc_login: Path
) -> None:
    planned = _json(["preview", str(EXAMPLE), "--json"])["changes"]
    with pytest.raises(TargetNotFound):
        _target("gcp-dev")  # a preview records nothing
    deployed = _json(["deploy", str(EXAMPLE), "--json", "--skip-images"])
    assert deployed["changes"] == planned
    assert planned["create"] > 40
    assert mocked_gcp.config["gcp-dev"] == {"gcp:project": "my-project", "gcp:region": "europe-west1"}

    target = _target("gcp-dev")
    settings = CloudRunSettings.model_validate(deployed["outputs"]["settings"])
    assert (target.provider, target.capacity, target.embedded_runner) == ("cloudrun", 10, True)
    assert CloudRunSettings.model_validate(target.settings_dict) == settings
    assert (settings.project, settings.region, settings.queue_prefix) == (
        "my-project",
        "europe-west1",
        "mayfly-gcp-dev",
    )
    assert settings.image_prefix == deployed["outputs"]["repository_url"]
    assert settings.image_prefix == "europe-west1-docker.pkg.dev/my-project/mayfly-gcp-dev"
    assert settings.task_service_account == "gcp-dev-task@my-project.iam.gserviceaccount.com"
    assert settings.signer_service_account == "gcp-dev-runner@my-project.iam.gserviceaccount.com"
    assert _json(["outputs", "gcp-dev", "--json"])["settings"] == deployed["outputs"]["settings"]

    # A changed section updates what it changes, and nothing else: the three dead-letter policies.
    changed = tmp_path / "gcp-dev.yaml"
    changed.write_text(EXAMPLE.read_text().replace("max_delivery_attempts: 5 ", "max_delivery_attempts: 9 "))
    assert _json(["preview", str(changed), "--json"])["changes"] == {"update": 3, "same": planned["create"] - 3}

    destroyed = _json(["destroy", "gcp-dev", "--yes", "--json"])
    assert destroyed == {"stack": "gcp-dev", "target": "gcp-dev", "changes": {"delete": planned["create"]}}
    with pytest.raises(TargetNotFound):
        _target("gcp-dev")


def test_a_runner_in_the_cloud_is_recorded_without_an_embedded_runner(
    home: Path, tmp_path: Path, mocked_gcp: Any, adc_login: Path
) -> None:
    stack_file = tmp_path / "prod.yaml"
    stack_file.write_text(
        "cloud: gcp\nname: prod\nregion: us-central1\ncapacity: 4\n"
        "runner: {enabled: true, image: us-docker.pkg.dev/p/tools/mayfly:1, cpu: 2048, memory: 4096}\n"
        "gcp: {project: prod-project-1, enable_apis: false}\n"
    )
    deployed = _json(["deploy", str(stack_file), "--json", "--skip-images"])
    assert deployed["outputs"]["runner_worker_pool"] == "prod-runner"
    target = _target("prod")
    assert (target.provider, target.capacity, target.embedded_runner) == ("cloudrun", 4, False)


def test_no_google_credentials_is_one_line_and_changes_nothing(
    home: Path, mocked_gcp: Any, no_google_credentials: None
) -> None:
    result = runner.invoke(app, ["deploy", str(EXAMPLE)])
    assert result.exit_code != 0
    assert result.stderr == (
        "Error: no Google Cloud application-default credentials found: run `gcloud auth application-default login` "
        "(or set GOOGLE_APPLICATION_CREDENTIALS to a key file)\n"
    )
    assert not (home / "pulumi" / ".mocked").exists()
    with pytest.raises(TargetNotFound):
        _target("gcp-dev")


def test_a_gcp_stack_file_with_problems_is_one_line_each_before_anything_runs(
    home: Path, tmp_path: Path, mocked_gcp: Any, adc_login: Path
) -> None:
    stack_file = tmp_path / "bad.yaml"
    stack_file.write_text(
        textwrap.dedent(
            """\
            cloud: gcp
            name: a-name-longer-than-the-limit
            region: europe-west
            tags: {Team: data}
            runner: {enabled: true, cpu: 3072}
            gcp:
              project: My_Project
              max_delivery_attempts: 3
              soft_delete_days: 3
              retry_minimum_backoff_seconds: 300
              retry_maximum_backoff_seconds: 60
              operators: [ops@example.com]
              colour: red
            """
        )
    )
    result = runner.invoke(app, ["deploy", str(stack_file)])
    assert result.exit_code == 2
    lines = result.stderr.removeprefix("Error: ").splitlines()
    assert lines == [
        f"{stack_file}: name: at most 23 characters on gcp (service account ids NAME-runner: 30)",
        f"{stack_file}: region: 'europe-west' is not a Google Cloud region (like europe-west1)",
        f"{stack_file}: tags: tag key 'Team' is not a Google Cloud label key (lowercase letters, digits, '_' and '-', "
        "starting with a letter, at most 63)",
        f"{stack_file}: runner: image is required when the runner is enabled (an image with Mayfly installed); "
        "cpu 3072 is not a Cloud Run size (one of 1024, 2048, 4096, 6144, 8192; 1024 = one vCPU)",
        f"{stack_file}: gcp.project: 'My_Project' is not a Google Cloud project id (6-30 lowercase letters, digits "
        "and '-', starting with a letter)",
        f"{stack_file}: gcp.max_delivery_attempts: must be greater than or equal to 5, got 3",
        f"{stack_file}: gcp.soft_delete_days: must be 0 (off) or 7-90 days (Cloud Storage's soft delete bounds)",
        f"{stack_file}: gcp.operators: 'ops@example.com' is not an IAM member (user:EMAIL, group:EMAIL or "
        "serviceAccount:EMAIL)",
        f"{stack_file}: gcp.colour: unknown key",
    ]
    assert not (home / "deploy").exists()
    assert not (home / "pulumi").exists()


def test_a_gcp_stack_file_needs_its_project_and_sane_combinations(
    home: Path, tmp_path: Path, mocked_gcp: Any, adc_login: Path
) -> None:
    stack_file = tmp_path / "bad.yaml"
    stack_file.write_text("cloud: gcp\nname: dev\nregion: europe-west1\nrunner: {memory: 8192}\n")
    result = runner.invoke(app, ["preview", str(stack_file)])
    assert (result.exit_code, result.stderr.removeprefix("Error: ").splitlines()) == (
        2,
        [
            f"{stack_file}: runner: memory 8192 does not fit cpu 1024 (Cloud Run: 512-4096 MiB)",
            f"{stack_file}: gcp: missing (required)",
        ],
    )
    stack_file.write_text(
        "cloud: gcp\nname: dev\nregion: europe-west1\n"
        "gcp: {project: my-project, retry_minimum_backoff_seconds: 300, retry_maximum_backoff_seconds: 60, "
        "vpc_subnetwork: tasks}\n"
    )
    result = runner.invoke(app, ["preview", str(stack_file)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {stack_file}: gcp: retry_minimum_backoff_seconds is above retry_maximum_backoff_seconds; "
        "vpc_subnetwork needs vpc_network\n",
    )


@pytest.mark.parametrize(
    "stderr",
    [
        # pulumi-gcp without application-default credentials (the Terraform provider's words).
        "error: pulumi:providers:gcp resource 'default' has a problem: Attempted to load application default "
        "credentials since neither `credentials` nor `access_token` was set in the provider block.  No credentials "
        "loaded. To use your gcloud credentials, run 'gcloud auth application-default login'.  Original error: "
        "google: could not find default credentials.",
        # Credentials that Google no longer accepts (a login that needs renewing).
        "error: 1 error occurred:\n\t* googleapi: Error 401: Request had invalid authentication credentials. "
        "Expected OAuth 2 access token, login cookie or other valid authentication credential., unauthorized",
    ],
)
def test_google_refusing_credentials_during_a_run_is_credentials_missing(stderr: str) -> None:
    err = translate(
        CommandError(CommandResult(stdout="", stderr=stderr, code=255)),
        stack="gcp-dev",
        doing="deploy",
        cloud=cloud_for("gcp"),
    )
    assert isinstance(err, CredentialsMissing)
    assert err.message.startswith("deploy gcp-dev: Google Cloud credentials missing or rejected (")
    assert err.message.endswith(
        "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a key file)"
    )

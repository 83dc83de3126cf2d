"""The aci provider against ARM answers ACI gives and the emulator cannot: throttling, capacity, quota, RBAC,
image pulls, OOM. The responses (tests/providers/aci/recorded/arm.json) follow the shapes of Azure's documented
examples (REST reference, "Troubleshoot common issues in Azure Container Instances"); they reach the provider through
the real Azure SDK pipeline (a requests adapter stands in for the network), so headers, error parsing and retries are
the SDK's.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter

from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.errors import LaunchFailed
from mayfly.core.messages import container_name
from mayfly.core.models import ContainerStatus, LaunchSpec
from mayfly.core.provider import ProviderContext
from mayfly.providers.aci.arm import Arm
from mayfly.providers.aci.limiter import TokenBucket
from mayfly.providers.aci.naming import group_name
from mayfly.providers.aci.provider import AciProvider
from mayfly.providers.aci.settings import AciSettings

pytest.importorskip("azure.mgmt.containerinstance")
from azure.core.pipeline.transport import RequestsTransport

RECORDED = json.loads((Path(__file__).parent / "recorded" / "arm.json").read_text())
SUB = "00000000-0000-0000-0000-000000000001"
HOME, TARGET = "home-a", "azure-test"
PULL_ID = (
    f"/subscriptions/{SUB}/resourceGroups/mayfly-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
    "mayfly-pull"
)


@dataclass
class Arm404:
    """Answers queued per (method, path regex); every request is kept."""

    answers: list[tuple[str, str, int, dict[str, str], Any]] = field(default_factory=list)
    requests: list[requests.PreparedRequest] = field(default_factory=list)

    def add(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.answers.append((method, path, status, headers or {}, body))

    def add_error(self, method: str, path: str, name: str) -> None:
        e = RECORDED["errors"][name]
        self.add(method, path, e["status"], e["body"], e["headers"])


class RecordedAdapter(BaseAdapter):
    def __init__(self, book: Arm404) -> None:
        super().__init__()
        self.book = book

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.book.requests.append(request)
        path = (request.path_url or "").split("?")[0]
        for i, answer in enumerate(self.book.answers):
            if answer[0] == request.method and re.search(answer[1], path):
                _, _, status, headers, body = self.book.answers.pop(i)
                break
        else:
            raise AssertionError(f"unexpected {request.method} {path}")
        response = requests.Response()
        response.status_code = status
        response.headers.update({"Content-Type": "application/json", **headers})
        data = json.dumps(body).encode()
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(data), headers=dict(response.headers), status=status, preload_content=False
        )
        response._content = data
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


class SigningStore(LocalBlobStore):
    """A local blob store that signs URLs the way a cloud store would (the container never runs here)."""

    def url_for(self, key: str, *, method: str = "GET", expires: int = 3600) -> str | None:
        return f"https://mayflystore.blob.core.windows.net/mayfly/{key}?sig=abc&sp={'r' if method == 'GET' else 'cw'}"


@pytest.fixture
def book() -> Arm404:
    return Arm404()


@pytest.fixture
def provider(book: Arm404, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AciProvider]:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    session = requests.Session()
    session.mount("http://", RecordedAdapter(book))
    settings = AciSettings(
        subscription_id=SUB,
        resource_group="mayfly-rg",
        location="westeurope",
        storage_account="mayflystore",
        queue_prefix="mayfly",
        container="mayfly",
        registry_server="mayflyreg.azurecr.io",
        image_prefix="mayflyreg.azurecr.io/mayfly",
        pull_identity_id=PULL_ID,
        arm_endpoint="http://arm.invalid",
    )
    slept: list[float] = []
    p = AciProvider(
        settings,
        ProviderContext(SigningStore(tmp_path / "blobs"), tmp_path / "work", HOME, TARGET),
        arm=Arm(settings, transport=RequestsTransport(session=session)),
        create_limiter=TokenBucket(1000, 1000),
        clock=lambda: 1000.0 + sum(slept),
        sleep=slept.append,
        rng=random.Random(3),
    )
    p.slept = slept  # type: ignore[attr-defined]
    yield p
    p.close()


def spec(attempt: int = 1, **kw: Any) -> LaunchSpec:
    task = "6571f0d2a3b4c5d6e7f80912"
    base: dict[str, Any] = dict(
        name=container_name(task, attempt),
        task_id=task,
        attempt=attempt,
        project="proj1",
        image="mayfly/runtime-shell:1",
        command=("/usr/local/bin/mayfly-boot", "sh main.sh"),
        env={"MAYFLY_TASK_ID": task},
        code=None,
        payload=b'{"n": 7}',
        config=b"{}",
        cpu=0.25,
        memory_mb=700,
        timeout=300,
        secrets={"DB_PASSWORD": b"hunter2"},
    )
    base.update(kw)
    return LaunchSpec(**base)


def ours(group: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    return {
        **group,
        "tags": {
            "mayfly.task": "6571f0d2a3b4c5d6e7f80912",
            "mayfly.attempt": str(attempt),
            "mayfly.home": HOME,
            "mayfly.target": TARGET,
        },
    }


GROUP = r"/containerGroups/mayfly-6571f0d2a3b4c5d6e7f80912-1-[0-9a-f]{10}$"


def test_throttled_creates_back_off_then_create_once_with_secure_values(book: Arm404, provider: AciProvider) -> None:
    book.add_error("GET", GROUP, "not_found")
    book.add_error("PUT", GROUP, "throttled")
    book.add_error("PUT", GROUP, "throttled")
    book.add("PUT", GROUP, 201, RECORDED["running"])
    result = provider.launch(spec())
    assert not result.existing
    assert result.handle == group_name(HOME, TARGET, container_name("6571f0d2a3b4c5d6e7f80912", 1))
    puts = [r for r in book.requests if r.method == "PUT"]
    assert len(puts) == 3
    assert len(provider.slept) == 2  # type: ignore[attr-defined]
    assert all(r.headers["If-None-Match"] == "*" for r in puts)
    body = json.loads(bytes(puts[-1].body or b""))  # type: ignore[arg-type]
    c = body["properties"]["containers"][0]["properties"]
    assert body["properties"]["restartPolicy"] == "Never"
    assert body["properties"]["osType"] == "Linux"
    assert c["image"] == "mayflyreg.azurecr.io/mayfly/runtime-shell:1"
    assert c["resources"]["requests"] == {"cpu": 0.3, "memoryInGB": 0.7}
    env = {e["name"]: e for e in c["environmentVariables"]}
    assert env["MAYFLY_TASK_ID"] == {"name": "MAYFLY_TASK_ID", "value": "6571f0d2a3b4c5d6e7f80912"}
    for name in ("MAYFLY_PAYLOAD_URL", "MAYFLY_CONFIG_URL", "MAYFLY_RESULT_URL", "MAYFLY_SECRET_DB_PASSWORD"):
        assert set(env[name]) == {"name", "secureValue"}, name
    assert env["MAYFLY_SECRET_DB_PASSWORD"]["secureValue"] == "aHVudGVyMg=="
    assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {PULL_ID: {}}}
    assert body["properties"]["imageRegistryCredentials"] == [{"server": "mayflyreg.azurecr.io", "identity": PULL_ID}]
    assert body["tags"]["mayfly.home"] == HOME
    assert body["tags"]["mayfly.attempt"] == "1"


def test_a_group_created_between_the_get_and_the_put_is_reattached_not_updated(
    book: Arm404, provider: AciProvider
) -> None:
    book.add_error("GET", GROUP, "not_found")
    book.add_error("PUT", GROUP, "exists")
    book.add("GET", GROUP, 200, ours(RECORDED["running"]))
    result = provider.launch(spec())
    assert result.existing
    assert [r.method for r in book.requests] == ["GET", "PUT", "GET"]
    assert provider.state(result.handle).status is ContainerStatus.RUNNING


def test_an_existing_group_is_reattached_without_a_put(book: Arm404, provider: AciProvider) -> None:
    book.add("GET", GROUP, 200, ours(RECORDED["succeeded"]))
    result = provider.launch(spec())
    assert result.existing
    assert [r.method for r in book.requests] == ["GET"]
    st = provider.state(result.handle)
    assert (st.status, st.exit_code) == (ContainerStatus.EXITED, 0)
    assert st.finished_at is not None
    assert st.started_at is not None
    assert st.finished_at > st.started_at


@pytest.mark.parametrize(
    ("error", "retryable", "words", "puts"),
    [
        ("capacity", True, "no ACI capacity", 7),
        ("quota_zero", False, "quota 0", 1),
        ("denied", False, "Managed Identity Operator", 1),
    ],
)
def test_create_refusals_are_diagnosed(
    book: Arm404, provider: AciProvider, error: str, retryable: bool, words: str, puts: int
) -> None:
    book.add_error("GET", GROUP, "not_found")
    for _ in range(puts):
        book.add_error("PUT", GROUP, error)
    with pytest.raises(LaunchFailed) as failure:
        provider.launch(spec())
    assert failure.value.retryable is retryable
    assert words in failure.value.message
    assert len([r for r in book.requests if r.method == "PUT"]) == puts


def test_sizes_beyond_aci_are_refused_before_any_put(book: Arm404, provider: AciProvider) -> None:
    book.add_error("GET", GROUP, "not_found")
    with pytest.raises(LaunchFailed, match="4 cores, 16 GB") as failure:
        provider.launch(spec(cpu=8))
    assert failure.value.retryable is False
    assert [r.method for r in book.requests] == ["GET"]


@pytest.mark.parametrize(
    ("recorded", "exit_code", "oom", "infra", "words"),
    [
        ("failed_exit_3", 3, False, None, ""),
        ("oom", 137, True, None, "out of memory (the container exceeded its limit of 0.5 GB)"),
        ("pull_not_found", None, False, "fail", "not found in its registry"),
        ("pull_denied", None, False, "fail", "needs AcrPull"),
        ("stopped", None, False, None, ""),
    ],
)
def test_states_from_the_instance_view(
    book: Arm404,
    provider: AciProvider,
    recorded: str,
    exit_code: int | None,
    oom: bool,
    infra: str | None,
    words: str,
) -> None:
    handle = RECORDED[recorded]["name"]
    book.add("GET", f"/containerGroups/{handle}$", 200, ours(RECORDED[recorded]))
    st = provider.state(handle)
    assert st.status is ContainerStatus.EXITED
    assert (st.exit_code, st.oom_killed, st.infra) == (exit_code, oom, infra)
    assert words in st.detail


def test_another_homes_group_is_missing_to_this_one(book: Arm404, provider: AciProvider) -> None:
    handle = RECORDED["running"]["name"]
    other = ours(RECORDED["running"])
    other["tags"]["mayfly.home"] = "home-b"
    book.add("GET", f"/containerGroups/{handle}$", 200, other)
    assert provider.state(handle).status is ContainerStatus.MISSING


def test_a_followed_log_is_whole_when_aci_keeps_only_the_last_lines_of_a_stopped_container(
    book: Arm404, provider: AciProvider
) -> None:
    """ACI keeps 4 MB of a running container's log but the last 1,000 lines of a stopped one."""
    handle = RECORDED["running"]["name"]
    group = f"/containerGroups/{handle}$"
    logs = f"/containerGroups/{handle}/containers/task/logs$"
    book.add("GET", group, 200, ours(RECORDED["running"]))
    book.add("GET", logs, 200, {"content": "".join(f"{i}\n" for i in range(1, 1501))})
    book.add("GET", group, 200, ours({**RECORDED["succeeded"], "name": handle}))
    book.add("GET", logs, 200, {"content": "".join(f"{i}\n" for i in range(1001, 2001)) + "the-end"})
    followed = b"".join(provider.logs(handle, follow=True))
    assert followed == "".join(f"{i}\n" for i in range(1, 2001)).encode() + b"the-end"
    assert not book.answers
    # Read again once the group is gone: what was known is kept until the group is removed.
    book.add_error("GET", logs, "not_found")
    assert b"".join(provider.logs(handle)) == followed

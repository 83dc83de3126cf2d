"""The ARM emulator through the real ``azure-mgmt-containerinstance`` client, on real Docker.

Each test uses a resource group of its own, so listings see only its groups. Waits are
"did it happen within N s", never timing assertions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerinstance import models

from mayfly.providers.aci.emulator import ArmEmulator
from mayfly.providers.aci.emulator.containers import LABEL, LABEL_GROUP

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WAIT = 60.0


def wait_for(what: str, check: Callable[[], Any], limit: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit:.0f} s")
        time.sleep(0.2)
    return value


def group(
    image: str,
    command: list[str] | None = None,
    *,
    restart: str = "Never",
    cpu: float = 0.5,
    memory_gb: float = 0.5,
    env: list[models.EnvironmentVariable] | None = None,
    tags: dict[str, str] | None = None,
) -> models.ContainerGroup:
    """A one-container Linux group as a user writes it."""
    return models.ContainerGroup(
        location="westeurope",
        os_type="Linux",
        restart_policy=restart,
        tags=tags,
        containers=[
            models.Container(
                name="main",
                image=image,
                command=command,
                environment_variables=env,
                resources=models.ResourceRequirements(
                    requests=models.ResourceRequests(cpu=cpu, memory_in_gb=memory_gb)
                ),
            )
        ],
    )


@pytest.fixture
def rg() -> str:
    return f"rg-{uuid.uuid4().hex[:8]}"


def terminated(client: Any, rg: str, name: str) -> Any:
    """The group once its container terminated."""
    return wait_for(
        f"{name} terminated",
        lambda: (
            (g := client.container_groups.get(rg, name)).containers[0].instance_view.current_state.state == "Terminated"
            and g
        ),
    )


def containers_of(docker_client: Any, arm: ArmEmulator, group_id: str) -> list[Any]:
    filters = {"label": [f"{LABEL}={arm.instance}", f"{LABEL_GROUP}={group_id}"]}
    return list(docker_client.containers.list(all=True, filters=filters))


def test_a_group_runs_to_its_exit_code_with_instance_view_logs_and_hidden_secure_values(
    aci_client: Any, busybox_image: str, rg: str
) -> None:
    env = [
        models.EnvironmentVariable(name="PLAIN", value="visible"),
        models.EnvironmentVariable(name="SECRET", secure_value="s3cret"),
    ]
    script = 'echo "plain=$PLAIN"; echo "secret-${#SECRET}-${SECRET#s3}"; echo to-stderr >&2; exit 3'
    created = aci_client.container_groups.begin_create_or_update(
        rg, "job-1", group(busybox_image, ["sh", "-c", script], env=env, tags={"mayfly-task": "t1"})
    ).result()
    assert created.provisioning_state == "Succeeded"
    assert created.id.endswith(f"/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/job-1")

    done = terminated(aci_client, rg, "job-1")
    view = done.containers[0].instance_view
    assert view.current_state.exit_code == 3
    assert view.current_state.detail_status == "Error"
    assert view.current_state.start_time <= view.current_state.finish_time
    assert view.restart_count == 0
    assert [e.name for e in view.events] == ["Pulling", "Pulled", "Started"]
    assert done.instance_view.state == "Failed"
    assert done.tags == {"mayfly-task": "t1"}
    assert done.containers[0].resources.requests.cpu == 0.5

    # The secure value reached the container but is never returned; plain values are.
    variables = {v.name: (v.value, v.secure_value) for v in done.containers[0].environment_variables}
    assert variables == {"PLAIN": ("visible", None), "SECRET": (None, None)}
    listed = next(aci_client.container_groups.list_by_resource_group(rg))
    assert "s3cret" not in str(listed.as_dict())
    logs = aci_client.containers.list_logs(rg, "job-1", "main").content
    # stdout and stderr are two streams: their relative order is not kept.
    assert sorted(logs.splitlines()) == ["plain=visible", "secret-6-cret", "to-stderr"]


def test_exceeding_the_memory_is_a_real_oom_kill(aci_client: Any, busybox_image: str, rg: str) -> None:
    aci_client.container_groups.begin_create_or_update(
        rg, "hungry", group(busybox_image, ["busybox", "tail", "/dev/zero"], memory_gb=0.05)
    ).result()
    state = terminated(aci_client, rg, "hungry").containers[0].instance_view.current_state
    assert (state.exit_code, state.detail_status) == (137, "OOMKilled")


def test_stop_then_delete_removes_the_container(
    aci_client: Any, arm_emulator: ArmEmulator, busybox_image: str, docker_client: Any, rg: str
) -> None:
    created = aci_client.container_groups.begin_create_or_update(
        rg, "long", group(busybox_image, ["sh", "-c", "trap 'echo got TERM; exit 143' TERM; sleep 300 & wait"])
    ).result()
    assert created.containers[0].instance_view.current_state.state == "Running"
    assert [c.status for c in containers_of(docker_client, arm_emulator, created.id)] == ["running"]

    aci_client.container_groups.stop(rg, "long")
    stopped = terminated(aci_client, rg, "long")
    assert stopped.instance_view.state == "Stopped"
    assert stopped.containers[0].instance_view.current_state.exit_code == 143
    assert "got TERM" in aci_client.containers.list_logs(rg, "long", "main").content

    # Start runs the group anew (a new container, fresh logs); restart likewise.
    aci_client.container_groups.begin_start(rg, "long").result()
    started = aci_client.container_groups.get(rg, "long")
    assert (started.instance_view.state, started.containers[0].instance_view.current_state.state) == (
        "Running",
        "Running",
    )
    assert aci_client.containers.list_logs(rg, "long", "main").content == ""
    aci_client.container_groups.begin_restart(rg, "long").result()
    wait_for(
        "restarted",
        lambda: (
            aci_client.container_groups.get(rg, "long").containers[0].instance_view.current_state.state == "Running"
        ),
    )
    assert [c.status for c in containers_of(docker_client, arm_emulator, created.id)] == ["running"]

    aci_client.container_groups.begin_delete(rg, "long").result()
    with pytest.raises(ResourceNotFoundError):
        aci_client.container_groups.get(rg, "long")
    assert containers_of(docker_client, arm_emulator, created.id) == []
    # Deleting what is not there is not an error (ARM answers 204).
    aci_client.container_groups.begin_delete(rg, "long").result()


def test_list_by_resource_group_and_subscription_with_tags(aci_client: Any, busybox_image: str, rg: str) -> None:
    for name, task in (("a-1", "t-a"), ("b-1", "t-b")):
        aci_client.container_groups.begin_create_or_update(
            rg, name, group(busybox_image, ["true"], tags={"mayfly-task": task})
        ).result()
    aci_client.container_groups.update(rg, "b-1", models.Resource(tags={"mayfly-task": "t-b", "extra": "1"}))
    aci_client.container_groups.update(rg, "a-1", models.Resource())  # a PATCH naming no tags keeps them
    listed = {g.name: g.tags for g in aci_client.container_groups.list_by_resource_group(rg.upper())}
    assert listed == {"a-1": {"mayfly-task": "t-a"}, "b-1": {"mayfly-task": "t-b", "extra": "1"}}
    everywhere = {g.id: g.tags for g in aci_client.container_groups.list()}
    assert {gid.rsplit("/", 1)[1]: tags for gid, tags in everywhere.items() if f"/{rg}/" in gid} == listed
    for name in listed:
        aci_client.container_groups.begin_delete(rg, name).result()
    assert list(aci_client.container_groups.list_by_resource_group(rg)) == []


def test_a_missing_image_is_acis_pull_failure(aci_client: Any, rg: str) -> None:
    image = "mayflytest.azurecr.io/nothing/here:v9"
    with pytest.raises(HttpResponseError) as failed:
        aci_client.container_groups.begin_create_or_update(rg, "nopull", group(image, ["true"])).result()
    assert failed.value.error.code == "InaccessibleImage"
    seen = aci_client.container_groups.get(rg, "nopull")
    assert seen.provisioning_state == "Failed"
    view = seen.containers[0].instance_view
    assert (view.current_state.state, view.current_state.detail_status) == ("Waiting", "ErrImagePull")
    events = {e.name: e for e in view.events}
    assert events["Failed"].type == "Warning"
    assert events["Failed"].message.startswith(f'Failed to pull image "{image}"')
    aci_client.container_groups.begin_delete(rg, "nopull").result()


def test_registry_references_run_the_local_runtime_image(
    aci_client: Any, runtime_images: dict[str, str], rg: str
) -> None:
    local = runtime_images["shell"]  # mayfly/runtime-shell:V
    version = local.rsplit(":", 1)[1]
    image = f"mayflytest.azurecr.io/mayfly/runtime-shell:{version}"
    command = ["sh", "-c", "echo first; echo from-runtime"]
    # As a target pulls from its registry: with a user-assigned identity (recorded and echoed, never checked).
    pull_identity = (
        f"/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull"
    )
    body = group(image, command)
    body.identity = models.ContainerGroupIdentity(
        type="UserAssigned", user_assigned_identities={pull_identity: models.UserAssignedIdentities()}
    )
    body.image_registry_credentials = [
        models.ImageRegistryCredential(server="mayflytest.azurecr.io", identity=pull_identity)
    ]
    created = aci_client.container_groups.begin_create_or_update(rg, "rt", body).result()
    assert created.identity.user_assigned_identities[pull_identity].client_id
    assert created.image_registry_credentials[0].identity == pull_identity
    assert terminated(aci_client, rg, "rt").containers[0].instance_view.current_state.exit_code == 0
    assert aci_client.containers.list_logs(rg, "rt", "main").content == "first\nfrom-runtime\n"
    assert aci_client.containers.list_logs(rg, "rt", "main", tail=1).content == "from-runtime\n"
    aci_client.container_groups.begin_delete(rg, "rt").result()


def test_put_on_an_existing_name_updates_tags_in_place_and_restarts_on_a_new_command(
    aci_client: Any, busybox_image: str, rg: str
) -> None:
    first = group(busybox_image, ["sh", "-c", "echo one; sleep 300"], tags={"v": "1"})
    aci_client.container_groups.begin_create_or_update(rg, "upd", first).result()
    wait_for("first run's output", lambda: aci_client.containers.list_logs(rg, "upd", "main").content == "one\n")
    retagged = aci_client.container_groups.begin_create_or_update(
        rg, "upd", group(busybox_image, ["sh", "-c", "echo one; sleep 300"], tags={"v": "2"})
    ).result()
    assert retagged.tags == {"v": "2"}
    assert aci_client.containers.list_logs(rg, "upd", "main").content == "one\n"  # same container

    aci_client.container_groups.begin_create_or_update(
        rg, "upd", group(busybox_image, ["sh", "-c", "echo two"], tags={"v": "2"})
    ).result()
    assert terminated(aci_client, rg, "upd").containers[0].instance_view.current_state.exit_code == 0
    assert aci_client.containers.list_logs(rg, "upd", "main").content == "two\n"
    aci_client.container_groups.begin_delete(rg, "upd").result()


def test_if_none_match_star_refuses_a_put_on_an_existing_group_and_leaves_it_running(
    aci_client: Any, busybox_image: str, rg: str
) -> None:
    running = group(busybox_image, ["sh", "-c", "echo one; sleep 300"], tags={"v": "1"})
    aci_client.container_groups.begin_create_or_update(rg, "once", running).result()
    wait_for("the first run's output", lambda: aci_client.containers.list_logs(rg, "once", "main").content == "one\n")
    again = group(busybox_image, ["sh", "-c", "echo two"], tags={"v": "2"})
    with pytest.raises(HttpResponseError) as refused:
        aci_client.container_groups.begin_create_or_update(rg, "once", again, headers={"If-None-Match": "*"})
    assert (refused.value.status_code, refused.value.error.code) == (412, "PreconditionFailed")
    kept = aci_client.container_groups.get(rg, "once")
    assert kept.tags == {"v": "1"}
    assert kept.containers[0].instance_view.current_state.state == "Running"
    assert aci_client.containers.list_logs(rg, "once", "main").content == "one\n"  # not restarted
    aci_client.container_groups.begin_delete(rg, "once").result()


def test_on_failure_restarts_until_the_container_succeeds(aci_client: Any, busybox_image: str, rg: str) -> None:
    # Fails on its first run, succeeds on the second (the marker survives a restart of the same container).
    script = "if [ -e /tmp/ran ]; then exit 0; fi; touch /tmp/ran; exit 1"
    aci_client.container_groups.begin_create_or_update(
        rg, "retry", group(busybox_image, ["sh", "-c", script], restart="OnFailure")
    ).result()
    done = terminated(aci_client, rg, "retry")
    view = done.containers[0].instance_view
    assert (view.restart_count, view.current_state.exit_code, view.previous_state.exit_code) == (1, 0, 1)
    assert [(e.name, e.count) for e in view.events] == [("Pulling", 1), ("Pulled", 1), ("Started", 2), ("BackOff", 1)]
    assert done.instance_view.state == "Succeeded"
    aci_client.container_groups.begin_delete(rg, "retry").result()


@pytest.mark.parametrize(
    ("name", "changes", "code"),
    [
        ("Not_Valid", {}, "InvalidContainerGroupName"),
        ("a--b", {}, "InvalidContainerGroupName"),
        ("x" * 64, {}, "InvalidContainerGroupName"),
        ("ok", {"cpu": 0}, "InvalidContainerResourceRequests"),
        ("ok", {"memory_gb": 64}, "ResourceRequestsExceedMaxAllowed"),
        ("ok", {"restart": "Sometimes"}, "InvalidRestartPolicy"),
    ],
)
def test_invalid_requests_are_arm_400s_and_create_nothing(
    aci_client: Any, busybox_image: str, rg: str, name: str, changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(HttpResponseError) as refused:
        aci_client.container_groups.begin_create_or_update(rg, name, group(busybox_image, ["true"], **changes))
    assert refused.value.status_code == 400
    assert refused.value.error.code == code
    assert list(aci_client.container_groups.list_by_resource_group(rg)) == []


def test_a_command_that_cannot_run_terminates_the_container(aci_client: Any, busybox_image: str, rg: str) -> None:
    aci_client.container_groups.begin_create_or_update(rg, "nocmd", group(busybox_image, ["no-such-command"])).result()
    done = aci_client.container_groups.get(rg, "nocmd")
    view = done.containers[0].instance_view
    assert (view.current_state.state, view.current_state.detail_status) == ("Terminated", "ContainerCannotRun")
    assert view.current_state.exit_code == 127
    assert "no-such-command" in view.events[-1].message
    assert done.instance_view.state == "Failed"
    aci_client.container_groups.begin_delete(rg, "nocmd").result()


def test_logs_of_an_unknown_group_or_container_are_404s(aci_client: Any, busybox_image: str, rg: str) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        aci_client.containers.list_logs(rg, "nothing", "main")
    assert missing.value.error.code == "ResourceNotFound"
    aci_client.container_groups.begin_create_or_update(rg, "one", group(busybox_image, ["true"])).result()
    with pytest.raises(ResourceNotFoundError) as wrong:
        aci_client.containers.list_logs(rg, "one", "other")
    assert wrong.value.error.code == "ContainerNotFound"
    aci_client.container_groups.begin_delete(rg, "one").result()


def test_raw_requests_need_a_token_and_an_api_version(arm_emulator: ArmEmulator) -> None:
    import httpx

    path = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups"
    unauthenticated = httpx.get(arm_emulator.local_url + path, params={"api-version": "2023-05-01"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "AuthenticationFailed"
    headers = {"Authorization": "Bearer anything"}
    unversioned = httpx.get(arm_emulator.local_url + path, headers=headers)
    assert (unversioned.status_code, unversioned.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    listed = httpx.get(arm_emulator.local_url + path, headers=headers, params={"api-version": "2023-05-01"})
    assert (listed.status_code, listed.json()) == (200, {"value": []})


def test_injected_throttling_and_quota_errors_reach_the_client_and_change_nothing(
    arm_emulator: ArmEmulator, aci_client: Any, busybox_image: str, rg: str
) -> None:
    from mayfly.providers.aci.emulator.clients import management_client

    # The SDK retries a 429 by itself (honouring Retry-After): the create goes through.
    arm_emulator.inject_fault(429, "TooManyRequests", method="PUT", path_contains=f"/{rg}/", retry_after=0)
    aci_client.container_groups.begin_create_or_update(rg, "after-429", group(busybox_image, ["true"])).result()

    # Without retries the caller sees it; a quota refusal is never retried.
    no_retries = management_client(arm_emulator.local_url, "any-subscription", retry_total=0)
    arm_emulator.inject_fault(429, "TooManyRequests", method="PUT", path_contains=f"/{rg}/", retry_after=1)
    with pytest.raises(HttpResponseError) as throttled:
        no_retries.container_groups.begin_create_or_update(rg, "throttled", group(busybox_image, ["true"]))
    assert throttled.value.status_code == 429
    assert throttled.value.response.headers["Retry-After"] == "1"
    arm_emulator.inject_fault(
        400, "ContainerGroupQuotaReached", "quota exceeded", method="PUT", path_contains=f"/{rg}/"
    )
    with pytest.raises(HttpResponseError) as quota:
        aci_client.container_groups.begin_create_or_update(rg, "over-quota", group(busybox_image, ["true"]))
    assert quota.value.error.code == "ContainerGroupQuotaReached"
    assert [g.name for g in aci_client.container_groups.list_by_resource_group(rg)] == ["after-429"]
    aci_client.container_groups.begin_delete(rg, "after-429").result()


def test_containers_of_a_killed_emulator_are_removed_by_the_next_one(docker_client: Any, busybox_image: str) -> None:
    import contextlib
    import socket
    import subprocess

    import docker.errors

    from mayfly.providers.aci.emulator.containers import LABEL_HOST, LABEL_PID

    gone = subprocess.Popen(["true"])
    gone.wait()
    labels = {LABEL: "killed-emulator", LABEL_PID: str(gone.pid), LABEL_HOST: socket.gethostname()}
    left = docker_client.containers.create(busybox_image, ["sleep", "300"], labels=labels)
    alive = docker_client.containers.create(busybox_image, ["sleep", "300"], labels={**labels, LABEL_PID: "1"})
    try:
        with ArmEmulator("127.0.0.1", 0):
            pass
        remaining = {
            c.id for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}=killed-emulator"})
        }
        assert remaining == {alive.id}  # pid 1 is alive: that emulator's containers stay
    finally:
        for container in (left, alive):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)

"""The provider conformance suite: what every Mayfly provider must do, as pytest tests.

Subclass :class:`ProviderConformance` in a test module of your provider (a
``class MyCloudProvider(Provider[MyCloudSettings])``) and override two fixtures,
``provider`` (an instance, ready to launch) and ``image`` (an image the provider
can run, with a POSIX ``sh`` and the usual tools: ``cat``, ``printf``, ``seq``,
``sleep``, ``head``, ``yes``, ``dd``)::

    import pytest
    from mayfly.testing import ProviderConformance

    class TestMyCloud(ProviderConformance):
        @pytest.fixture
        def provider(self, tmp_path):
            p = MyCloudProvider(MyCloudSettings(...), make_context(tmp_path))
            yield p
            p.close()

        @pytest.fixture
        def image(self):
            return "registry.example/mayfly-test:busybox"

Every container a test launches through the ``launch`` fixture is removed at
teardown. Tests of optional operations (cancel, reattach, log streaming, network
``none``) are skipped only when the provider *declares* the capability
unsupported (``unsupported = {Capability.CANCEL: "reason"}``); a provider that
merely forgets to implement one fails. Class attributes (``shell``,
``oom_command``, ``stop_slack``, ...) adapt the suite to a slower or different
provider.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol

import pytest

from mayfly.core.blobs import code_key
from mayfly.core.errors import InvalidInput, LaunchFailed, Unsupported
from mayfly.core.messages import container_name
from mayfly.core.models import CodeRef, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Capability, Provider, ProviderSettings

__all__ = ["CodeFiles", "Launcher", "ProviderConformance", "SpecFactory", "make_code"]

#: Files of a code package: name -> content, or name -> (content, unix mode).
CodeFiles = Mapping[str, bytes | tuple[bytes, int]]


class SpecFactory(Protocol):
    """The ``make_spec`` fixture: a LaunchSpec for the suite's image, with overrides."""

    def __call__(
        self,
        command: str | Sequence[str] = "true",
        *,
        env: Mapping[str, str] | None = None,
        code: CodeFiles | CodeRef | None = None,
        payload: bytes = b"{}",
        config: bytes = b"{}",
        memory_mb: int = 64,
        cpu: float = 0.5,
        network: str = "bridge",
        task_id: str | None = None,
        attempt: int = 1,
        labels: Mapping[str, str] | None = None,
        timeout: int = 300,
    ) -> LaunchSpec:
        """A string ``command`` runs through the suite's shell; a sequence is the argv itself."""
        ...


class Launcher(Protocol):
    """The ``launch`` fixture: launches a spec and removes the container at teardown."""

    def __call__(self, spec: LaunchSpec, other: Provider[Any] | None = None) -> LaunchResult:
        """Launch ``spec`` through the suite's provider, or through ``other``."""
        ...


def make_code(provider: Provider[Any], files: CodeFiles) -> CodeRef:
    """Zip ``files`` into a code package, store it content-addressed in the provider's blob store."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in sorted(files.items()):
            data, mode = value if isinstance(value, tuple) else (value, 0o644)
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    blob = buf.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    key = code_key(sha)
    provider.context.blobs.put(key, blob)
    return CodeRef(key=key, sha256=sha, size=len(blob))


class ProviderConformance:
    """Base class of a provider's conformance tests; see the module docstring."""

    #: argv prefix that runs a command string.
    shell: ClassVar[tuple[str, ...]] = ("/bin/sh", "-c")
    #: Allocates far beyond ``oom_memory_mb`` (dd allocates its whole block buffer).
    oom_command: ClassVar[str] = "dd if=/dev/zero of=/dev/null bs=300M count=1"
    oom_memory_mb: ClassVar[int] = 32
    #: Seconds a provider may take, beyond the grace period, to stop a container.
    stop_slack: ClassVar[float] = 30.0
    #: Seconds a short command may take from launch to exit (pulls and cold starts included).
    exit_timeout: ClassVar[float] = 120.0
    #: The provider's log service keeps lines, not bytes (CloudWatch Logs, Cloud Logging): a last
    #: line written without a newline comes back with one. Everything else must still be exact.
    line_logs: ClassVar[bool] = False

    # ------------------------------------------------------------ fixtures to override

    @pytest.fixture
    def provider(self) -> Provider[Any]:
        """The provider under test. Override it."""
        pytest.fail(f"{type(self).__name__} must override the 'provider' fixture")

    @pytest.fixture
    def image(self) -> str:
        """An image the provider can run, with a POSIX shell. Override it."""
        pytest.fail(f"{type(self).__name__} must override the 'image' fixture")

    # ------------------------------------------------------------ fixtures provided

    @pytest.fixture
    def make_spec(self, provider: Provider[Any], image: str) -> SpecFactory:
        """A factory of LaunchSpecs with a fresh task id each (see :class:`SpecFactory`)."""
        shell = self.shell

        def factory(
            command: str | Sequence[str] = "true",
            *,
            env: Mapping[str, str] | None = None,
            code: CodeFiles | CodeRef | None = None,
            payload: bytes = b"{}",
            config: bytes = b"{}",
            memory_mb: int = 64,
            cpu: float = 0.5,
            network: str = "bridge",
            task_id: str | None = None,
            attempt: int = 1,
            labels: Mapping[str, str] | None = None,
            timeout: int = 300,
        ) -> LaunchSpec:
            task_id = task_id or f"conf{uuid.uuid4().hex[:16]}"
            argv = (*shell, command) if isinstance(command, str) else tuple(command)
            if code is not None and not isinstance(code, CodeRef):
                code = make_code(provider, code)
            return LaunchSpec(
                name=container_name(task_id, attempt),
                task_id=task_id,
                attempt=attempt,
                project="conformance",
                image=image,
                command=argv,
                env=dict(env or {}),
                code=code,
                payload=payload,
                config=config,
                cpu=cpu,
                memory_mb=memory_mb,
                timeout=timeout,
                network=network,
                labels=dict(labels or {}),
            )

        return factory

    @pytest.fixture
    def launch(self, provider: Provider[Any]) -> Iterator[Launcher]:
        """Launch through ``provider`` (or another one); every container is removed at teardown."""
        launched: list[tuple[Provider[Any], str]] = []

        def do_launch(spec: LaunchSpec, other: Provider[Any] | None = None) -> LaunchResult:
            p = other or provider
            result = p.launch(spec)
            launched.append((p, result.handle))
            return result

        yield do_launch
        for p, handle in reversed(launched):
            p.remove(handle)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def require(provider: Provider[Any], capability: Capability) -> None:
        """Skip when the provider declares ``capability`` unsupported (and only then)."""
        reason = provider.unsupported.get(capability)
        if reason is not None:
            pytest.skip(f"provider {provider.name!r} declares {capability.value} unsupported: {reason}")

    def wait_exited(self, provider: Provider[Any], handle: str) -> ContainerState:
        """Wait for the container to exit; fail if it does not within ``exit_timeout``."""
        st = provider.wait(handle, self.exit_timeout)
        assert st.status is ContainerStatus.EXITED, f"container did not exit within {self.exit_timeout}s: {st}"
        return st

    def wait_until(self, what: str, check: Callable[[], bool]) -> None:
        """Poll ``check`` until it is true; fail after ``exit_timeout``."""
        deadline = time.monotonic() + self.exit_timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def wait_running(self, provider: Provider[Any], handle: str) -> None:
        """Wait until the container runs."""

        def running() -> bool:
            st = provider.state(handle)
            assert st.status is not ContainerStatus.EXITED, f"container exited early: {st}"
            return st.status is ContainerStatus.RUNNING

        self.wait_until("the container to run", running)

    @staticmethod
    def log_of(provider: Provider[Any], handle: str) -> bytes:
        """The log of a container; the whole log once it exited, as the runner reads it.

        Followed to its end where the provider streams logs: a cloud's log service may lag the
        task's exit by seconds (CloudWatch Logs, Cloud Logging), and following is what waits
        until the log is complete.
        """
        follow = Capability.LOG_STREAMING not in provider.unsupported
        if follow and provider.state(handle).status is not ContainerStatus.EXITED:
            follow = False  # still running: what is there so far (following would wait for the end)
        return b"".join(provider.logs(handle, follow=follow))

    # ------------------------------------------------------------ declarations

    def test_declarations_are_consistent(self, provider: Provider[Any]) -> None:
        """Name, settings and capabilities are declared as data, without contradictions."""
        assert isinstance(provider.name, str)
        assert provider.name
        assert not set(provider.capabilities) & set(provider.unsupported), "a capability is both offered and not"
        assert all(reason.strip() for reason in provider.unsupported.values())
        assert provider.limits.max_cpu > 0
        assert provider.limits.max_memory_mb > 0
        assert provider.limits.max_timeout > 0
        assert "bridge" not in provider.refused_networks, "every provider runs the default network"
        assert all(reason.strip() for reason in provider.refused_networks.values())
        assert provider.named_networks_refused is None or provider.named_networks_refused.strip()
        assert issubclass(provider.Settings, ProviderSettings)
        undocumented = [n for n, f in provider.Settings.model_fields.items() if not f.description]
        assert not undocumented, f"settings without a description: {undocumented}"

    def test_check_passes(self, provider: Provider[Any]) -> None:
        provider.check()

    # ------------------------------------------------------------ launch and exit

    @pytest.mark.parametrize("code", [0, 3])
    def test_exit_code_propagates(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher, code: int
    ) -> None:
        result = launch(make_spec(f"exit {code}"))
        assert not result.existing
        st = self.wait_exited(provider, result.handle)
        assert st.exit_code == code
        assert not st.oom_killed
        if st.started_at is not None and st.finished_at is not None:
            assert st.finished_at >= st.started_at

    def test_payload_config_and_env_are_visible(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        spec = make_spec(
            'cat /mayfly/payload.json; echo; cat /mayfly/config.json; echo; echo "$GREETING"',
            payload=b'{"n": 42}',
            config=b'{"mode": "test"}',
            env={"GREETING": "hello world"},
        )
        handle = launch(spec).handle
        assert self.wait_exited(provider, handle).exit_code == 0
        assert self.log_of(provider, handle) == b'{"n": 42}\n{"mode": "test"}\nhello world\n'

    def test_code_is_unpacked_in_the_working_directory(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        code: CodeFiles = {
            "run.sh": (b"#!/bin/sh\necho from-code\ncat data/inner.txt\n", 0o755),
            "data/inner.txt": b"inner\n",
        }
        handle = launch(make_spec("pwd && ./run.sh", code=code)).handle
        st = self.wait_exited(provider, handle)
        log = self.log_of(provider, handle)
        assert st.exit_code == 0, log
        assert log == b"/mayfly/task\nfrom-code\ninner\n"

    # ------------------------------------------------------------ result

    def test_result_is_read_back(self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher) -> None:
        handle = launch(make_spec("printf '{\"answer\": 42}' > /mayfly/result.json")).handle
        assert self.wait_exited(provider, handle).exit_code == 0
        assert provider.result(handle, 1024) == b'{"answer": 42}'

    @pytest.mark.parametrize("command", ["true", ": > /mayfly/result.json"], ids=["absent", "empty"])
    def test_no_result_is_none(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher, command: str
    ) -> None:
        handle = launch(make_spec(command)).handle
        assert self.wait_exited(provider, handle).exit_code == 0
        assert provider.result(handle, 1024) is None

    def test_result_over_the_cap_is_refused(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        handle = launch(make_spec("yes | head -c 5000 > /mayfly/result.json")).handle
        assert self.wait_exited(provider, handle).exit_code == 0
        with pytest.raises(InvalidInput, match="1000"):
            provider.result(handle, 1000)
        assert provider.result(handle, 5000) == b"y\n" * 2500

    # ------------------------------------------------------------ idempotent launch

    def _containers_of(self, provider: Provider[Any], task_id: str) -> int:
        return sum(1 for a in provider.reattach() if a.task_id == task_id)

    def test_relaunch_with_the_same_name_returns_the_running_container(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        spec = make_spec("sleep 300")
        first = launch(spec)
        second = launch(spec)
        assert not first.existing
        assert second.existing
        assert provider.state(second.handle).status in (ContainerStatus.PENDING, ContainerStatus.RUNNING)
        if Capability.REATTACH in provider.capabilities:
            assert self._containers_of(provider, spec.task_id) == 1

    def test_relaunch_after_exit_starts_nothing(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        spec = make_spec("echo ran")
        first = launch(spec)
        before = self.wait_exited(provider, first.handle)
        second = launch(spec)
        assert second.existing
        after = provider.state(second.handle)
        assert after.status is ContainerStatus.EXITED
        assert after.finished_at == before.finished_at
        assert self.log_of(provider, second.handle) == b"ran\n"

    # ------------------------------------------------------------ logs

    def test_logs_keep_every_byte(self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher) -> None:
        """10,000 lines, then a last line without a newline, and an immediate exit: nothing is lost."""
        expected = b"".join(b"%d\n" % i for i in range(1, 10_001)) + b"the-end"
        if self.line_logs:
            expected += b"\n"
        handle = launch(make_spec("seq 1 10000; printf the-end")).handle
        if Capability.LOG_STREAMING not in provider.unsupported:
            followed = b"".join(provider.logs(handle, follow=True))
            assert len(followed) == len(expected)
            assert followed == expected
        assert self.wait_exited(provider, handle).exit_code == 0
        assert self.log_of(provider, handle) == expected

    def test_logs_combine_stdout_and_stderr(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        handle = launch(make_spec("echo to-out; echo to-err >&2")).handle
        self.wait_exited(provider, handle)
        assert sorted(self.log_of(provider, handle).splitlines()) == [b"to-err", b"to-out"]

    # ------------------------------------------------------------ wait and cancel

    def test_wait_returns_the_state_on_timeout(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        handle = launch(make_spec("sleep 300")).handle
        self.wait_running(provider, handle)
        assert provider.wait(handle, 0.5).status is ContainerStatus.RUNNING

    def test_cancel_stops_a_running_container(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        self.require(provider, Capability.CANCEL)
        handle = launch(make_spec("sleep 300")).handle
        self.wait_running(provider, handle)
        grace = 2.0
        started = time.monotonic()
        provider.cancel(handle, grace)
        took = time.monotonic() - started
        st = provider.state(handle)
        assert st.status is ContainerStatus.EXITED, "cancel returned before the container stopped"
        assert took < grace + self.stop_slack

    def test_cancel_kills_after_the_grace_period(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        """SIGTERM first (the task's handler runs), SIGKILL when the task ignores it."""
        self.require(provider, Capability.CANCEL)
        command = "trap 'echo got-term' TERM; echo ready; while :; do sleep 1; done"
        handle = launch(make_spec(command)).handle
        self.wait_until("the task to install its handler", lambda: b"ready" in self.log_of(provider, handle))
        provider.cancel(handle, 3.0)
        st = provider.state(handle)
        assert st.status is ContainerStatus.EXITED
        assert st.exit_code != 0
        assert b"got-term" in self.log_of(provider, handle)

    def test_cancel_after_exit_keeps_the_exit_code(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        self.require(provider, Capability.CANCEL)
        handle = launch(make_spec("exit 5")).handle
        self.wait_exited(provider, handle)
        provider.cancel(handle, 0.0)
        assert provider.state(handle).exit_code == 5

    # ------------------------------------------------------------ reattach, remove

    def test_reattach_finds_this_homes_containers_only(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        self.require(provider, Capability.REATTACH)
        ours = [make_spec("sleep 300"), make_spec("exit 0", attempt=2)]
        handles = {(s.task_id, s.attempt): launch(s).handle for s in ours}
        ctx = provider.context
        other = type(provider)(
            provider.settings,
            replace(ctx, home_id=f"{ctx.home_id}-other", work_dir=ctx.work_dir.with_name(f"{ctx.work_dir.name}-other")),
        )
        theirs = make_spec("sleep 300")
        launch(theirs, other)

        found = {(a.task_id, a.attempt): a for a in provider.reattach()}
        assert set(handles) <= set(found)
        assert (theirs.task_id, theirs.attempt) not in found
        for key, handle in handles.items():
            assert provider.state(found[key].handle).status is provider.state(handle).status
            assert found[key].state.status is not ContainerStatus.MISSING
        assert (theirs.task_id, theirs.attempt) in {(a.task_id, a.attempt) for a in other.reattach()}

    def test_remove_is_idempotent(self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher) -> None:
        spec = make_spec("true")
        handle = launch(spec).handle
        self.wait_exited(provider, handle)
        provider.remove(handle)
        provider.remove(handle)
        assert provider.state(handle).status is ContainerStatus.MISSING
        with contextlib.suppress(Unsupported):
            assert provider.find(spec.name) is None

    def test_remove_stops_a_running_container(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        handle = launch(make_spec("sleep 300")).handle
        self.wait_running(provider, handle)
        provider.remove(handle)
        assert provider.state(handle).status is ContainerStatus.MISSING

    # ------------------------------------------------------------ limits

    def test_out_of_memory_is_reported(self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher) -> None:
        handle = launch(make_spec(self.oom_command, memory_mb=self.oom_memory_mb)).handle
        st = self.wait_exited(provider, handle)
        assert st.oom_killed, st
        assert st.exit_code != 0

    def test_refused_networks_fail_at_launch(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        """The provider's own check, the second line behind admission: a network it declares refused never starts."""
        refused = list(provider.refused_networks)
        if provider.named_networks_refused is not None:
            refused.append("mayfly-conformance-net")
        if Capability.NETWORK_NONE in provider.unsupported:
            refused.append("none")
        if not refused:
            pytest.skip(f"provider {provider.name!r} declares no refused network")
        for network in refused:
            with pytest.raises(LaunchFailed) as failure:
                launch(make_spec("true", network=network))
            assert failure.value.retryable is False, network

    def test_network_none_has_only_loopback(
        self, provider: Provider[Any], make_spec: SpecFactory, launch: Launcher
    ) -> None:
        self.require(provider, Capability.NETWORK_NONE)
        command = 'while read -r line; do case $line in *:*) echo "${line%%:*}";; esac; done < /proc/net/dev'
        handle = launch(make_spec(command, network="none")).handle
        assert self.wait_exited(provider, handle).exit_code == 0
        assert self.log_of(provider, handle).split() == [b"lo"]

"""The plugin system: built-ins load through the entry point group; bad plugins fail loudly, by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core import hookimpl, hookspecs
from mayfly.core.clouds import CloudRegistry
from mayfly.core.errors import InvalidSettings, PluginError, ProviderNotFound, Unsupported
from mayfly.core.models import ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.plugins import ProviderRegistry, build_plugins
from mayfly.core.provider import Capability, Provider, ProviderSettings, check_capability
from mayfly.core.targets import validate_settings


class NullProvider(Provider[ProviderSettings]):
    """A provider that starts nothing; enough to exercise registration."""

    name = "null"
    capabilities = frozenset({Capability.CANCEL})
    unsupported = {Capability.GPU: "no devices here"}

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        return LaunchResult(handle=spec.name)

    def state(self, handle: str) -> ContainerState:
        return ContainerState(ContainerStatus.EXITED, exit_code=0)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        return iter(())

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        return None

    def remove(self, handle: str) -> None:
        return None


class NullPlugin:
    __name__ = "null-plugin"

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(NullProvider)


def test_the_docker_provider_is_registered_through_its_entry_point() -> None:
    plugins = build_plugins()
    assert "docker" in plugins.registry.names()
    (info,) = [i for i in plugins.infos if i.name == "docker"]
    assert (info.module, info.distribution, info.providers) == ("mayfly.providers.docker", "mayfly-tasks", ("docker",))
    assert info.hooks == ("mayfly_register_providers",)


def test_an_extra_plugin_adds_a_provider() -> None:
    plugins = build_plugins((NullPlugin(),))
    assert plugins.registry.get("null") is NullProvider


def test_blocked_plugins_do_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYFLY_DISABLE_PLUGINS", "docker,ecs,cloudrun")
    registry = build_plugins().registry
    with pytest.raises(ProviderNotFound, match="unknown provider 'docker' \\(registered: none\\)"):
        registry.get("docker")


def test_a_provider_missing_methods_is_refused_at_registration() -> None:
    class Half(Provider[ProviderSettings]):
        name = "half"

        def launch(self, spec: LaunchSpec) -> LaunchResult:
            return LaunchResult(handle="x")

    with pytest.raises(PluginError, match="provider 'half' does not implement: logs, remove, result, state"):
        ProviderRegistry().add(Half)


def test_duplicates_and_non_providers_are_refused() -> None:
    registry = ProviderRegistry()
    registry.add(NullProvider)

    class Other(NullProvider):
        pass

    with pytest.raises(PluginError, match="provider 'null' registered twice"):
        registry.add(Other)
    with pytest.raises(PluginError, match="is not a Provider class"):
        registry.add(object)  # type: ignore[arg-type]


def test_optional_operations_fail_loudly() -> None:
    p = NullProvider(NullProvider.Settings(), None)  # type: ignore[arg-type]
    with pytest.raises(Unsupported, match="provider 'null' does not support reattach"):
        p.reattach()
    check_capability(NullProvider, Capability.CANCEL)
    with pytest.raises(Unsupported, match="provider 'null' does not support gpu: no devices here"):
        check_capability(NullProvider, Capability.GPU)


def test_every_hookspec_is_tested_and_documented() -> None:
    text = Path(__file__).read_text()
    for name in hookspecs.__all__:
        assert callable(getattr(hookspecs, name))
        assert f"def {name}" in text  # implemented by a plugin in this file
        assert ":param" in (getattr(hookspecs, name).__doc__ or "")
        assert name in (hookspecs.__doc__ or "")


class NullCloud:
    """Enough of a deploy plug-in for the registry (the full contract is mayfly.infra.cloud.Cloud)."""

    name = "nullcloud"
    provider = "null"


class NullCloudPlugin:
    __name__ = "null-cloud-plugin"

    @hookimpl
    def mayfly_register_clouds(self, registry: CloudRegistry) -> None:
        registry.add(NullCloud)


def test_clouds_register_through_the_same_group_and_hook_beside_providers() -> None:
    plugins = build_plugins((NullCloudPlugin(),))
    assert plugins.clouds.find("nullcloud") is NullCloud
    names = plugins.clouds.names()
    # The built-in clouds (aws, gcp, ...) and this one, sorted.
    assert {"aws", "gcp", "nullcloud"} <= set(names)
    assert names == sorted(names)
    (aws,) = [i for i in plugins.infos if i.name == "aws"]
    assert (aws.module, aws.distribution, aws.clouds, aws.providers) == (
        "mayfly.infra.clouds.aws",
        "mayfly-tasks",
        ("aws",),
        (),
    )
    assert aws.hooks == ("mayfly_register_clouds",)


def test_malformed_and_duplicate_clouds_are_refused() -> None:
    registry = CloudRegistry()
    registry.add(NullCloud)

    class Again(NullCloud):
        pass

    class Nameless:
        provider = "null"

    class NoProvider:
        name = "x"

    with pytest.raises(PluginError, match="cloud 'nullcloud' registered twice"):
        registry.add(Again)
    with pytest.raises(PluginError, match="has no valid 'name'"):
        registry.add(Nameless)
    with pytest.raises(PluginError, match="cloud 'x' names no 'provider'"):
        registry.add(NoProvider)
    with pytest.raises(PluginError, match="is not a class"):
        registry.add(NullCloud())  # type: ignore[arg-type]


# ------------------------------------------------------------------ Provider[SettingsT]


class ZoneSettings(ProviderSettings):
    zone: str


class ZonedProvider(Provider[ZoneSettings]):
    """Generic in its settings: ``Settings`` comes from the type parameter, ``self.settings`` is typed."""

    name = "zoned"

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        return LaunchResult(handle=f"{self.settings.zone}/{spec.name}")

    def state(self, handle: str) -> ContainerState:
        return ContainerState(ContainerStatus.EXITED, exit_code=0)

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        return iter(())

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        return None

    def remove(self, handle: str) -> None:
        return None


class _PluginOf:
    """A plug-in registering one provider class, as a third-party package would."""

    def __init__(self, provider: type[Provider[Any]]) -> None:
        self.__name__ = f"{provider.name}-plugin"
        self.provider = provider

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(self.provider)


def test_settings_come_from_the_type_parameter_and_validate_target_settings() -> None:
    cls = build_plugins((_PluginOf(ZonedProvider),)).registry.get("zoned")
    assert cls.Settings is ZoneSettings
    assert validate_settings(cls, {"zone": "eu-1"}) == {"zone": "eu-1"}
    with pytest.raises(InvalidSettings, match="invalid settings for provider 'zoned': zone: Field required"):
        validate_settings(cls, {})

    class Subzoned(ZonedProvider):
        name = "subzoned"

    assert Subzoned.Settings is ZoneSettings  # inherited, like every other class attribute


def test_settings_contradicting_the_type_parameter_are_refused_at_registration() -> None:
    class OtherSettings(ProviderSettings):
        region: str

    class Contradicting(ZonedProvider):
        name = "contradicting"
        Settings = OtherSettings

    with pytest.raises(PluginError) as err:
        build_plugins((_PluginOf(Contradicting),))
    assert str(err.value) == (
        "provider 'contradicting': Settings is OtherSettings but the class is Provider[ZoneSettings]; "
        "drop the Settings line or make it a subclass of ZoneSettings"
    )

    class NotAModel(ZonedProvider):
        name = "not-a-model"
        Settings = dict  # type: ignore[assignment]

    with pytest.raises(
        PluginError, match=r"^provider 'not-a-model': Settings \(<class 'dict'>\) is not a ProviderSettings subclass$"
    ):
        build_plugins((_PluginOf(NotAModel),))


def test_a_narrower_settings_model_is_accepted() -> None:
    class StrictZoneSettings(ZoneSettings):
        rack: int

    class Narrow(ZonedProvider):
        name = "narrow"
        Settings = StrictZoneSettings

    assert build_plugins((_PluginOf(Narrow),)).registry.get("narrow").Settings is StrictZoneSettings

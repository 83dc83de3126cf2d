"""Azurite (the Azure Storage emulator from npm), started once per test session for the Azure tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from mayfly.core.errors import MayflyError
from mayfly.providers.aci.emulator import azurite as azurite_launcher


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_launcher.Azurite]:
    """A running Azurite (blob and queue on free ports); skips when Node.js/npm or the package is absent.

    ``scripts/bootstrap --test`` installs ``azurite@3.35.0`` into the checkout's ``.cache/azurite``,
    so CI starts it without network; elsewhere the first session installs it (npm, about a minute).
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(azurite_launcher.NODE_HINT)
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    try:
        azurite_launcher.ensure_installed()
    except MayflyError as exc:
        pytest.skip(f"Azurite is not installed and npm could not install it: {exc}")
    try:
        running = azurite_launcher.start(log=log, memory_limit_mb=512)
    except MayflyError as exc:
        pytest.fail(f"Azurite is installed but did not start: {exc}")
    try:
        yield running
    finally:
        running.stop()

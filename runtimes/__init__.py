"""Runtimes: the base images tasks run on, and the boot agent every one of them starts with.

Each runtime is defined by ``<name>/runtime.toml`` and built on the local Docker
engine, offline from Debian packages (no registry) or on a ``--base`` image. The
boot agent (``boot/mayfly-boot``) implements the container contract of DESIGN.md.
"""

from __future__ import annotations

from mayfly.runtimes.build import BuiltImage, build, image_status
from mayfly.runtimes.catalog import Runtime, catalog, get_runtime
from mayfly.runtimes.exitcodes import BootExit

__all__ = ["BootExit", "BuiltImage", "Runtime", "build", "catalog", "get_runtime", "image_status"]

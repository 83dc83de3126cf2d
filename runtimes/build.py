"""Building a runtime image: offline from Debian packages (default) or on a ``--base`` image."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayfly.core.errors import RuntimeBuildFailed
from mayfly.runtimes import apt, image, rootfs, tarball
from mayfly.runtimes.catalog import Runtime

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """A runtime image present on the engine."""

    tag: str
    image_id: str
    size: int


def image_status(runtime: Runtime, client: Any) -> BuiltImage | None:
    """The runtime's image on the engine, or None when it is not built."""
    found = image.image_info(client, runtime.image)
    return BuiltImage(runtime.image, *found) if found else None


def build(
    runtime: Runtime,
    client: Any,
    cache_dir: Path,
    *,
    base: str | None = None,
    progress: Progress | None = None,
) -> BuiltImage:
    """Build ``runtime`` into ``runtime.image`` (and ``:latest``) on the engine of ``client``.

    Without ``base`` the image is assembled from Debian packages fetched with apt
    (cached in ``cache_dir/debs``; no registry needed). With ``base`` Mayfly's layer
    goes on top of that image, which must provide python3 >= 3.10 and /bin/sh.
    Raises RuntimeBuildFailed or EngineNotRunning with one line.
    """
    say = progress or (lambda _msg: None)
    sources = image.boot_sources()
    layer = image.layer_digest(sources)
    if base is not None:
        context = image.dockerfile(runtime, base, python="python3", offline=False, layer=layer, base=base)
        local = image.image_info(client, base) is not None
        hint = image.BASE_HINT if local else f"{base} is not on this engine and the engine could not pull it"
        say(f"adding Mayfly's layer to {base}")
        image_id = image.finish(client, runtime.image, image.build_context(context, sources), say, hint=hint)
    else:
        # A private tag per build: concurrent builds of one runtime must not remove each other's stage.
        stage = f"{runtime.repository}:stage-{uuid.uuid4().hex[:12]}"
        try:
            with tempfile.TemporaryDirectory(prefix=f"mayfly-{runtime.name}-") as tmp:
                tar_path = build_rootfs_tar(runtime, cache_dir, Path(tmp), say)
                say("importing the root filesystem")
                image.import_rootfs(client, tar_path, stage)
            context = image.dockerfile(runtime, stage, python=runtime.python, offline=True, layer=layer)
            say("adding Mayfly's layer")
            image_id = image.finish(client, runtime.image, image.build_context(context, sources), say)
        finally:
            image.remove_quietly(client, stage)
    image.tag(client, image_id, runtime.latest)
    image.prune_replaced(client, runtime.name)
    built = image_status(runtime, client)
    if built is None:
        raise RuntimeBuildFailed(f"{runtime.image} vanished right after its build")
    say(f"built {built.tag} ({built.size / 1e6:.1f} MB)")
    return built


def build_rootfs_tar(runtime: Runtime, cache_dir: Path, workdir: Path, say: Progress) -> Path:
    """Resolve, fetch and unpack the runtime's packages; write the image tar into ``workdir``."""
    say("resolving Debian packages")
    apt_cache = cache_dir / "apt"
    pins = apt.pinned(runtime.versions, cache=apt_cache)
    names = apt.resolve(runtime.packages, cache=apt_cache, versions={n: p.version for n, p in pins.items()})
    partial_names = [name for name in runtime.files if name not in names]
    packages = apt.candidates([*names, *partial_names], cache=apt_cache, pins=pins)
    debs = apt.fetch(packages.values(), cache_dir / "debs", say, cache=apt_cache)
    say(f"unpacking {len(debs)} packages")
    root = workdir / "rootfs"
    root.mkdir()
    rootfs.assemble(
        root,
        [debs[name] for name in names],
        [(debs[name], runtime.files[name]) for name in partial_names],
        runtime.links,
    )
    tar_path = workdir / "rootfs.tar"
    say("writing the image tar")
    with tar_path.open("wb") as out:
        tarball.write_tar(root, out, (*tarball.DEFAULT_EXCLUDE, *runtime.exclude))
    return tar_path

"""A runtime's root filesystem from .deb files: extract, then do what maintainer scripts would.

Nothing from the packages runs (``dpkg-deb -x`` only unpacks), so the few things
their scripts would have done are done here: busybox's applet links, the CA bundle
that ``update-ca-certificates`` would build, the symlinks a runtime asks for and
the usual top-level directories. Users and /mayfly come later, from the image's
setup step (``boot/mayfly_setup.py``), which is shared with ``--base`` builds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from mayfly.core.errors import RuntimeBuildFailed
from mayfly.runtimes.apt import NO_APT_HINT

CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
CA_SOURCES = "usr/share/ca-certificates"
BUSYBOX = "bin/busybox"


def _dpkg_deb(*args: str) -> None:
    if shutil.which("dpkg-deb") is None:
        raise RuntimeBuildFailed(f"dpkg-deb not found: {NO_APT_HINT}")
    proc = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeBuildFailed(f"dpkg-deb {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def extract(deb: Path, root: Path) -> None:
    """Unpack a whole package into ``root`` (no maintainer script runs)."""
    _dpkg_deb("-x", str(deb), str(root))


def matches(rel: str, globs: Iterable[str]) -> bool:
    """Whether the /-relative path ``rel`` matches one of ``globs`` (``*`` also crosses ``/``)."""
    return any(fnmatchcase(rel, glob) for glob in globs)


def extract_files(deb: Path, root: Path, globs: Iterable[str]) -> int:
    """Copy only the package's files and symlinks matching ``globs`` into ``root``; return how many."""
    globs = tuple(globs)
    count = 0
    with tempfile.TemporaryDirectory(prefix="mayfly-deb-") as tmp:
        extract(deb, Path(tmp))
        for dirpath, dirnames, filenames in os.walk(tmp):
            for name in sorted(dirnames + filenames):
                src = Path(dirpath, name)
                rel = src.relative_to(tmp).as_posix()
                if (src.is_dir() and not src.is_symlink()) or not matches(rel, globs):
                    continue
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                shutil.copy2(src, dest, follow_symlinks=False)
                count += 1
    if not count:
        raise RuntimeBuildFailed(f"{deb.name} has no file matching {', '.join(globs)}")
    return count


def add_busybox_applets(root: Path) -> int:
    """Link every busybox applet the packages did not provide (``/bin/sh`` among them)."""
    busybox = root / BUSYBOX
    if not busybox.is_file():
        raise RuntimeBuildFailed("the runtime has no /bin/busybox: add busybox-static to its packages")
    # The binary is static and of the host's architecture (apt downloads native packages).
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeBuildFailed(f"busybox --list-full failed: {proc.stderr.strip()}")
    count = 0
    for rel in proc.stdout.split():
        link = root / rel
        if not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/" + BUSYBOX)
            count += 1
    return count


def add_ca_bundle(root: Path) -> int:
    """Concatenate the packaged CA certificates into the bundle OpenSSL and Python read."""
    certs = sorted((root / CA_SOURCES).rglob("*.crt"))
    if not certs:
        raise RuntimeBuildFailed(f"no CA certificates under /{CA_SOURCES}: take them from ca-certificates")
    bundle = root / CA_BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    with bundle.open("wb") as out:
        for cert in certs:
            data = cert.read_bytes()
            out.write(data if data.endswith(b"\n") else data + b"\n")
    bundle.chmod(0o644)
    # OpenSSL's compiled-in defaults (OPENSSLDIR=/usr/lib/ssl) point here; Debian's openssl package
    # would have made these links.
    add_links(root, {"usr/lib/ssl/cert.pem": "/" + CA_BUNDLE, "usr/lib/ssl/certs": "/etc/ssl/certs"})
    return len(certs)


def add_links(root: Path, links: Mapping[str, str]) -> None:
    """Create symlinks ``path -> target`` (paths relative to /), replacing what is there."""
    for rel, target in links.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(target)


def add_base_dirs(root: Path) -> None:
    """The directories every image has: /etc, /root, and sticky, world-writable /tmp and /var/tmp."""
    for rel, mode in (("etc", 0o755), ("root", 0o700), ("tmp", 0o1777), ("var/tmp", 0o1777)):
        path = root / rel
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)


def assemble(
    root: Path,
    debs: Iterable[Path],
    partial: Iterable[tuple[Path, tuple[str, ...]]],
    links: Mapping[str, str],
) -> None:
    """Build the root filesystem in the empty directory ``root``.

    ``debs`` are unpacked whole; of each ``(deb, globs)`` in ``partial`` only the
    matching files are taken.
    """
    for deb in debs:
        extract(deb, root)
    for deb, globs in partial:
        extract_files(deb, root, globs)
    add_base_dirs(root)
    add_busybox_applets(root)
    add_ca_bundle(root)
    add_links(root, links)

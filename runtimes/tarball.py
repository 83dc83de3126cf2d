"""The image tar of a root filesystem: ownership normalised to root, modes kept, docs left out."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from mayfly.runtimes.rootfs import matches

#: Left out of every runtime image: documentation, manuals, translations.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "usr/share/doc/*/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "usr/share/doc-base/*",
    "usr/share/bug/*",
    "usr/share/menu/*",
)
#: Kept although an exclusion matches: the packages' license and copyright notices.
DEFAULT_KEEP: tuple[str, ...] = ("usr/share/doc/*/copyright",)


def included(rel: str, exclude: Iterable[str], keep: Iterable[str] = DEFAULT_KEEP) -> bool:
    """Whether the /-relative path ``rel`` goes into the image."""
    return matches(rel, keep) or not matches(rel, exclude)


def write_tar(root: Path, out: BinaryIO, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> int:
    """Write ``root`` as an uncompressed tar to ``out``; return the number of entries.

    Every entry is owned by root (the image's setup step hands /mayfly to the task
    user); sockets and devices are skipped; hard links stay hard links.
    """
    exclude = tuple(exclude)
    count = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = Path(dirpath, name)
                rel = path.relative_to(root).as_posix()
                if not included(rel, exclude):
                    continue
                info = tar.gettarinfo(str(path), arcname=rel)
                if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if info.isreg():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                count += 1
    return count

"""Debian packages without a registry: dependency closure, candidates and cached downloads via apt."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from mayfly.core.errors import RuntimeBuildFailed

Progress = Callable[[str], None]

#: Packages never installed, even when something depends on them. No maintainer script
#: runs in a runtime image, so the package manager, debconf and perl (pulled in by
#: mailcap/mime-support) would only take space.
DEFAULT_DENY: tuple[str, ...] = (
    "perl",
    "perl-base",
    "perl-modules-*",
    "libperl*",
    "debconf",
    "debconf-*",
    "cdebconf",
    "dpkg",
    "install-info",
    "tar",
    "mailcap",
    "mime-support",
    "adduser",
    "passwd",
    "login",
    "base-passwd",
    "init-system-helpers",
    "lsb-base",
    "sysvinit-utils",
    "ucf",
    "sensible-utils",
    "debianutils",
)

NO_APT_HINT = (
    "offline runtime builds need apt (a Debian or Ubuntu host with bookworm's packages); "
    "elsewhere pass --base IMAGE, an image that provides python3 >= 3.10 and /bin/sh"
)

#: Dependency graph: package -> groups of alternatives ("a | b" is one group).
Graph = dict[str, list[list[str]]]


@dataclass(frozen=True)
class Package:
    """The candidate version of one Debian package, as ``apt-cache show`` reports it."""

    name: str
    version: str
    arch: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        """The file name ``apt-get download`` gives it (the epoch colon is escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def _bare(name: str) -> str:
    """``python3:any`` -> ``python3``."""
    return name.split(":", 1)[0]


def parse_depends(text: str) -> Graph:
    """Parse ``apt-cache depends --recurse`` output into a graph.

    A virtual dependency (``<debconf-2.0>``) becomes the group of its providers (the
    deeper-indented lines after it); virtual packages themselves get no node.
    """
    graph: Graph = {}
    current: list[list[str]] | None = None
    group: list[str] | None = None
    continues = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            name = line.strip()
            current = None if name.startswith("<") else graph.setdefault(_bare(name), [])
            group, continues = None, False
            continue
        if current is None:
            continue
        if line.startswith("    "):  # a provider of the virtual package just named
            if group is not None:
                group.append(_bare(line.strip()))
            continue
        kind, _, target = line.strip().lstrip("|").partition(": ")
        if kind not in ("Depends", "PreDepends"):
            continue
        if group is None or not continues:
            group = []
            current.append(group)
        continues = line.startswith(" |")
        target = target.strip()
        if not target.startswith("<"):
            group.append(_bare(target))
    return graph


def denied(name: str, deny: Iterable[str]) -> bool:
    """Whether ``name`` matches one of the denylist's globs."""
    return any(fnmatchcase(name, pattern) for pattern in deny)


def closure(graph: Mapping[str, Sequence[Sequence[str]]], roots: Iterable[str], deny: Iterable[str]) -> list[str]:
    """The packages to install for ``roots``: for each group, the first allowed alternative.

    A group already satisfied by a chosen package adds nothing; a group whose every
    alternative is denied is dropped. Roots are always kept.
    """
    deny = tuple(deny)
    chosen: set[str] = set()
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in chosen:
            continue
        chosen.add(name)
        for group in graph.get(name, ()):
            if any(option in chosen or option in queue for option in group):
                continue
            pick = next((option for option in group if not denied(option, deny)), None)
            if pick is not None:
                queue.append(pick)
    return sorted(chosen)


def parse_show(text: str, versions: Mapping[str, str] | None = None) -> dict[str, Package]:
    """Parse ``apt-cache show`` stanzas; the first stanza of a name wins.

    With ``versions`` (package -> version glob), a stanza of a pinned package counts
    only when its version matches the glob (``apt-cache show`` lists newest first).
    Stanzas without a checksum (the installed package's status entry) never count.
    """
    pins = versions or {}
    found: dict[str, Package] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ": " in line:
                key, _, value = line.partition(": ")
                fields[key] = value.strip()
        if {"Package", "Version", "Architecture", "SHA256", "Size"} <= fields.keys():
            pin = pins.get(fields["Package"])
            if pin is not None and not fnmatchcase(fields["Version"], pin):
                continue
            found.setdefault(
                fields["Package"],
                Package(
                    fields["Package"], fields["Version"], fields["Architecture"], fields["SHA256"], int(fields["Size"])
                ),
            )
    return found


def _run(argv: Sequence[str], cache: Path | None, cwd: Path | None = None) -> str:
    """Run an apt command; RuntimeBuildFailed (one line) when apt is missing or fails.

    With ``cache``, apt keeps its binary package cache there: hosts configured like
    Debian's container images keep none and rebuild it on every call (~2 s each).
    """
    if shutil.which(argv[0]) is None:
        raise RuntimeBuildFailed(f"{argv[0]} not found: {NO_APT_HINT}")
    options: list[str] = []
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        options = [
            "-o",
            f"Dir::Cache::pkgcache={cache / 'pkgcache.bin'}",
            "-o",
            f"Dir::Cache::srcpkgcache={cache / 'srcpkgcache.bin'}",
        ]
    proc = subprocess.run([argv[0], *options, *argv[1:]], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise RuntimeBuildFailed(f"{' '.join(argv[:2])} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def pinned(versions: Mapping[str, str], *, cache: Path | None = None) -> dict[str, Package]:
    """The newest version of each pinned package that matches its glob (``{"nodejs": "18.*"}``).

    A pin keeps a runtime on the release its name promises even where the host's apt
    prefers another one (a newer nodejs from a third-party repository, say).
    """
    if not versions:
        return {}
    found = parse_show(_run(["apt-cache", "show", *versions], cache), versions)
    missing = [f"{name} {glob}" for name, glob in versions.items() if name not in found]
    if missing:
        raise RuntimeBuildFailed(f"apt has no {', '.join(missing)} (run 'apt-get update'?): {NO_APT_HINT}")
    return found


def resolve(
    roots: Sequence[str],
    deny: Iterable[str] = DEFAULT_DENY,
    *,
    cache: Path | None = None,
    versions: Mapping[str, str] | None = None,
) -> list[str]:
    """The dependency closure of ``roots`` on this host's apt sources, minus the denylist.

    ``versions`` (package -> exact version) makes apt follow that version's dependencies.
    """
    exact = versions or {}
    text = _run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *(f"{root}={exact[root]}" if root in exact else root for root in roots),
        ],
        cache,
    )
    graph = parse_depends(text)
    missing = [root for root in roots if root not in graph]
    if missing:
        raise RuntimeBuildFailed(f"apt knows no package {', '.join(missing)}: {NO_APT_HINT}")
    return closure(graph, roots, deny)


def candidates(
    names: Sequence[str], *, cache: Path | None = None, pins: Mapping[str, Package] | None = None
) -> dict[str, Package]:
    """The candidate version of each package, or its pin; RuntimeBuildFailed names those apt cannot install."""
    pinned_ = dict(pins or {})
    rest = [name for name in names if name not in pinned_]
    found = parse_show(_run(["apt-cache", "show", "--no-all-versions", *rest], cache)) if rest else {}
    found.update(pinned_)
    missing = [name for name in names if name not in found]
    if missing:
        raise RuntimeBuildFailed(
            f"no installation candidate for {', '.join(missing)} (run 'apt-get update'?): {NO_APT_HINT}"
        )
    return {name: found[name] for name in names}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    packages: Iterable[Package], debs_dir: Path, progress: Progress | None = None, *, cache: Path | None = None
) -> dict[str, Path]:
    """Each package's .deb in ``debs_dir``, downloading only those missing or corrupt there.

    Downloads land in a private directory first and are moved in once their sha256
    matches, so concurrent builds can share the cache.
    """
    packages = list(packages)
    debs_dir.mkdir(parents=True, exist_ok=True)
    paths = {pkg.name: debs_dir / pkg.filename for pkg in packages}
    wanted = [pkg for pkg in packages if not (paths[pkg.name].is_file() and _sha256(paths[pkg.name]) == pkg.sha256)]
    if progress:
        progress(f"{len(paths) - len(wanted)} packages cached, downloading {len(wanted)}")
    if not wanted:
        return paths
    with tempfile.TemporaryDirectory(prefix=".download-", dir=debs_dir) as tmp:
        # As root apt drops to the _apt user, which cannot write to an arbitrary directory.
        _run(
            [
                "apt-get",
                "download",
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                *(f"{pkg.name}={pkg.version}" for pkg in wanted),
            ],
            cache,
            cwd=Path(tmp),
        )
        for pkg in wanted:
            got = Path(tmp) / pkg.filename
            if not got.is_file() or _sha256(got) != pkg.sha256:
                raise RuntimeBuildFailed(f"apt-get download gave no valid {pkg.filename}")
            os.replace(got, paths[pkg.name])
    return paths

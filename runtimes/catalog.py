"""The runtime catalog: one ``<name>/runtime.toml`` per runtime, shipped with Mayfly."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from mayfly.core.errors import RuntimeNotFound

#: Repository prefix of every runtime image: ``mayfly/runtime-<name>:<version>``.
IMAGE_PREFIX = "mayfly/runtime-"


@dataclass(frozen=True)
class Runtime:
    """A base image definition: what it is called and how it is built from Debian packages."""

    name: str
    description: str
    #: Image version; bumped whenever the image content changes in a way codes may notice.
    version: str
    #: Command a code of this runtime runs when it names none.
    default_command: str | None
    #: Debian packages installed with their dependency closure.
    packages: tuple[str, ...]
    #: Interpreter of the offline image that runs the boot agent.
    python: str
    #: Byte-compile the whole standard library (for runtimes whose tasks use Python).
    compile_stdlib: bool = False
    #: Packages of which only files matching these globs are taken, without dependencies.
    files: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    #: Globs (relative to /) left out of the image, on top of the default exclusions.
    exclude: tuple[str, ...] = ()
    #: Symlinks to add: path (relative to /) -> target.
    links: dict[str, str] = field(default_factory=dict, hash=False)
    #: Version globs of pinned packages (``nodejs = "18.*"``): the newest matching version is taken.
    versions: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def repository(self) -> str:
        """Image repository, e.g. ``mayfly/runtime-python-3.11``."""
        return IMAGE_PREFIX + self.name

    @property
    def image(self) -> str:
        """The versioned image tag codes of this runtime run, e.g. ``mayfly/runtime-shell:1``."""
        return f"{self.repository}:{self.version}"

    @property
    def latest(self) -> str:
        """The ``:latest`` alias, moved to each new build."""
        return f"{self.repository}:latest"


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    return tuple(value)


def parse_runtime(text: str, where: str = "runtime.toml") -> Runtime:
    """Build a :class:`Runtime` from the text of a runtime.toml; ValueError names the bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: {exc}") from None
    try:
        debian = data["debian"]
        default = data.get("default_command")
        return Runtime(
            name=str(data["name"]),
            description=str(data["description"]),
            version=str(data["version"]),
            default_command=str(default) if default else None,
            packages=_strings(debian["packages"], f"{where}: debian.packages"),
            python=str(debian["python"]),
            compile_stdlib=bool(debian.get("compile_stdlib", False)),
            files={
                pkg: _strings(globs, f"{where}: debian.files.{pkg}") for pkg, globs in debian.get("files", {}).items()
            },
            exclude=_strings(debian.get("exclude", []), f"{where}: debian.exclude"),
            links={str(path): str(target) for path, target in debian.get("links", {}).items()},
            versions={str(pkg): str(glob) for pkg, glob in debian.get("versions", {}).items()},
        )
    except KeyError as exc:
        raise ValueError(f"{where}: missing field {exc.args[0]!r}") from None


def catalog() -> list[Runtime]:
    """Every runtime Mayfly ships, sorted by name."""
    runtimes = []
    for entry in files("mayfly.runtimes").iterdir():
        toml = entry / "runtime.toml"
        if entry.is_dir() and toml.is_file():
            runtime = parse_runtime(toml.read_text(encoding="utf-8"), f"{entry.name}/runtime.toml")
            if runtime.name != entry.name:
                raise ValueError(f"{entry.name}/runtime.toml: name {runtime.name!r} differs from its directory")
            runtimes.append(runtime)
    return sorted(runtimes, key=lambda r: r.name)


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``; RuntimeNotFound lists the known names."""
    runtimes = catalog()
    for runtime in runtimes:
        if runtime.name == name:
            return runtime
    known = ", ".join(r.name for r in runtimes)
    raise RuntimeNotFound(f"unknown runtime {name!r}; known runtimes: {known}", name=name)

"""Packaging: the wheel holds exactly the mayfly tree, typed, with its data files and entry points."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = {
    "core": "core",
    "providers": "providers",
    "infra": "infra",
    "cli": "cli",
    "runtimes": "runtimes",
    "testing": "testing",
    "api": "api",
}


@pytest.fixture(scope="module")
def wheel(built_wheel: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(built_wheel)


def _expected_files() -> set[str]:
    """Every .py and py.typed under the mapped folders, plus the runtimes' data files and the dashboard's files."""
    expected = set()
    for pkg, folder in SUBPACKAGES.items():
        for path in (ROOT / folder).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            rel = path.relative_to(ROOT / folder).as_posix()
            if (
                path.suffix == ".py"
                or path.name == "py.typed"
                or (folder == "runtimes" and (rel.startswith("boot/") or rel.endswith("/runtime.toml")))
                or path.name == "script.py.mako"
                or (folder == "core" and rel == "prices.json")
                or (folder == "api" and rel.startswith("dashboard_static/"))
            ):
                expected.add(f"mayfly/{pkg}/{rel}")
    return expected


@pytest.mark.slow
def test_wheel_holds_exactly_the_mayfly_tree(wheel: zipfile.ZipFile) -> None:
    names = {n for n in wheel.namelist() if ".dist-info/" not in n}
    assert {n.split("/")[0] for n in names} == {"mayfly"}
    assert names == _expected_files()
    for pkg in SUBPACKAGES:
        assert f"mayfly/{pkg}/py.typed" in names


@pytest.mark.slow
def test_wheel_declares_the_cli_and_the_builtin_provider(wheel: zipfile.ZipFile) -> None:
    (ep,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(ep).decode()
    assert "mayfly = mayfly.cli:main" in text
    providers = text.split("[mayfly.providers]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # The built-in providers and the AWS deploy plug-in share the group.
    assert {"docker = mayfly.providers.docker", "aws = mayfly.infra.clouds.aws"} <= set(providers)


def test_no_tests_package() -> None:
    # A tests/__init__.py would make `import core` work by accident; importlib mode needs none.
    assert not list((ROOT / "tests").rglob("__init__.py"))


def test_core_installs_without_cloud_sdks() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    for sdk in ("boto3", "google-cloud", "azure", "pulumi"):
        assert sdk not in deps


def _third_party_imports(folder: Path) -> set[str]:
    """Top-level names of every absolute import under ``folder`` that is neither stdlib nor mayfly."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("mayfly", "__future__", "_typeshed")}


def test_every_runtime_import_of_the_base_install_is_a_dependency() -> None:
    # The CLI, the API server, core, the Docker provider and the runtimes run from a plain
    # `pip install mayfly-tasks` (no extras): whatever they import must be declared, not arrive
    # through the test extra or by luck.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for folder in ("cli", "api", "core", "providers/docker", "runtimes"):
        for module in _third_party_imports(ROOT / folder):
            owners = {d.lower() for d in dists.get(module, [module])}
            if not owners & declared:
                missing[module] = sorted(owners)
    assert not missing, f"imported at run time but not in [project] dependencies: {missing}"

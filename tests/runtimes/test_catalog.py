"""The runtime catalog: the shipped runtime.toml files and lookups by name."""

from __future__ import annotations

import pytest

from mayfly.core.errors import ExitCode, RuntimeNotFound
from mayfly.runtimes import Runtime, catalog, get_runtime
from mayfly.runtimes.catalog import parse_runtime


def test_the_catalog_ships_shell_python_node_and_ruby() -> None:
    assert [r.name for r in catalog()] == ["node-18", "python-3.11", "ruby-3.1", "shell"]


@pytest.mark.parametrize(
    ("name", "package", "glob", "command"),
    [("node-18", "nodejs", "18.*", "node main.js"), ("ruby-3.1", "ruby3.1", "3.1.*", "ruby main.rb")],
)
def test_language_runtimes_pin_bookworms_release(name: str, package: str, glob: str, command: str) -> None:
    rt = get_runtime(name)
    assert package in rt.packages
    assert rt.versions[package] == glob
    assert rt.default_command == command
    # The boot agent runs on the same minimal CPython as in the shell runtime.
    assert "python3.11-minimal" in rt.packages
    assert rt.files["libpython3.11-stdlib"] == get_runtime("shell").files["libpython3.11-stdlib"]


def test_python_runtime_definition() -> None:
    rt = get_runtime("python-3.11")
    assert isinstance(rt, Runtime)
    assert rt.default_command == "python3 main.py"
    assert {"python3.11", "busybox-static"} <= set(rt.packages)
    assert rt.python == "/usr/bin/python3.11"
    assert rt.compile_stdlib is True
    assert rt.links["usr/bin/python3"] == "python3.11"
    assert rt.files["ca-certificates"] == ("usr/share/ca-certificates/*",)
    assert rt.image == f"mayfly/runtime-python-3.11:{rt.version}"
    assert rt.latest == "mayfly/runtime-python-3.11:latest"
    assert rt.description


def test_shell_runtime_takes_only_a_few_stdlib_files_for_the_agent() -> None:
    rt = get_runtime("shell")
    assert rt.default_command == "sh main.sh"
    assert "python3.11-minimal" in rt.packages
    assert "python3.11" not in rt.packages
    assert "usr/lib/python3.11/http/*" in rt.files["libpython3.11-stdlib"]
    assert rt.compile_stdlib is False
    assert "usr/bin/python3" not in rt.links


def test_an_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(RuntimeNotFound) as failure:
        get_runtime("cobol-85")
    assert failure.value.message == "unknown runtime 'cobol-85'; known runtimes: node-18, python-3.11, ruby-3.1, shell"
    assert failure.value.exit_code == ExitCode.NOT_FOUND


def test_a_runtime_toml_without_a_required_field_is_named() -> None:
    with pytest.raises(ValueError, match=r"x/runtime.toml: missing field 'python'"):
        parse_runtime('name = "x"\ndescription = "d"\nversion = "1"\n[debian]\npackages = ["a"]\n', "x/runtime.toml")
    with pytest.raises(ValueError, match=r"debian\.packages must be a list of strings"):
        parse_runtime('name = "x"\ndescription = "d"\nversion = 1\n[debian]\npackages = "a"\npython = "p"\n')

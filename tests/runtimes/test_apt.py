"""Dependency closure, denylist and the .deb cache, without touching apt's network."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.errors import RuntimeBuildFailed
from mayfly.runtimes import apt
from mayfly.runtimes.apt import DEFAULT_DENY, Package, closure, denied, parse_depends, parse_show

# Trimmed from `apt-cache depends --recurse --no-recommends ... python3.11 ca-certificates` on bookworm.
DEPENDS = """\
python3.11
  Depends: python3.11-minimal
  Depends: libpython3.11-stdlib
 |Depends: media-types
  Depends: mime-support
python3.11-minimal
  PreDepends: libc6
  Depends: libpython3.11-minimal
libpython3.11-stdlib
  Depends: libpython3.11-minimal
 |Depends: media-types
  Depends: mime-support
  Depends: libsqlite3-0
  Depends: <perl:any>
    perl-base
media-types
mime-support
  Depends: mailcap
  Depends: media-types
libc6
  Depends: libgcc-s1
libpython3.11-minimal
  Depends: libc6
  Depends: libssl3
mailcap
  Depends: perl
  Depends: media-types
libsqlite3-0
  Depends: libc6
libgcc-s1
  Depends: libc6
libssl3
  Depends: libc6
ca-certificates
  Depends: openssl
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
openssl
  Depends: libc6
  Depends: libssl3
readline-common
 |Depends: dpkg
  Depends: install-info
perl
  PreDepends: dpkg
  Depends: perl-base
<debconf-2.0>
"""

SHOW = """\
Package: python3.11
Version: 3.11.2-6+deb12u9
Architecture: amd64
Depends: python3.11-minimal (= 3.11.2-6+deb12u9), media-types | mime-support
Description: Interactive high-level object-oriented language (version 3.11)
 Python is a high-level, interactive, object-oriented language.
Size: 575032
SHA256: 4facf334e0e0830a87013852f8c3a1cfee11ad702f72f240adf9ad5b9a334e7c

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: amd64
Size: 928188
SHA256: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
"""


def test_alternatives_and_virtual_packages_are_parsed() -> None:
    graph = parse_depends(DEPENDS)
    assert graph["python3.11"] == [["python3.11-minimal"], ["libpython3.11-stdlib"], ["media-types", "mime-support"]]
    assert graph["libpython3.11-stdlib"][-1] == ["perl-base"]  # <perl:any> is provided by perl-base
    assert graph["ca-certificates"] == [["openssl"], ["debconf", "cdebconf", "debconf"]]
    assert graph["readline-common"] == [["dpkg", "install-info"]]
    assert "<debconf-2.0>" not in graph
    assert "debconf-2.0" not in graph


def test_the_closure_takes_first_allowed_alternatives_and_skips_the_denylist() -> None:
    names = closure(parse_depends(DEPENDS), ["python3.11"], DEFAULT_DENY)
    assert names == [
        "libc6",
        "libgcc-s1",
        "libpython3.11-minimal",
        "libpython3.11-stdlib",
        "libsqlite3-0",
        "libssl3",
        "media-types",
        "python3.11",
        "python3.11-minimal",
    ]


def test_a_group_with_only_denied_alternatives_is_dropped_but_roots_stay() -> None:
    graph = parse_depends(DEPENDS)
    assert closure(graph, ["ca-certificates"], DEFAULT_DENY) == [
        "ca-certificates",
        "libc6",
        "libgcc-s1",
        "libssl3",
        "openssl",
    ]
    assert "perl" in closure(graph, ["perl"], DEFAULT_DENY)
    assert closure(graph, ["readline-common"], ()) == ["dpkg", "readline-common"]
    assert closure(graph, ["readline-common"], ["dpkg"]) == ["install-info", "readline-common"]
    assert closure(graph, ["readline-common"], DEFAULT_DENY) == ["readline-common"]


@pytest.mark.parametrize(
    ("name", "is_denied"),
    [
        ("perl", True),
        ("perl-modules-5.36", True),
        ("libperl5.36", True),
        ("debconf", True),
        ("dpkg", True),
        ("mailcap", True),
        ("mime-support", True),
        ("media-types", False),
        ("libc6", False),
        ("python3.11", False),
    ],
)
def test_denylist_globs(name: str, is_denied: bool) -> None:
    assert denied(name, DEFAULT_DENY) is is_denied


def test_show_stanzas_become_packages_with_apt_file_names() -> None:
    found = parse_show(SHOW)
    assert found["python3.11"] == Package(
        "python3.11",
        "3.11.2-6+deb12u9",
        "amd64",
        "4facf334e0e0830a87013852f8c3a1cfee11ad702f72f240adf9ad5b9a334e7c",
        575032,
    )
    assert found["busybox-static"].filename == "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"


def _package(name: str, data: bytes) -> Package:
    return Package(name, "1.0", "all", hashlib.sha256(data).hexdigest(), len(data))


def test_fetch_reuses_valid_cached_debs_and_replaces_corrupt_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = _package("good", b"good deb"), _package("bad", b"bad deb")
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / good.filename).write_bytes(b"good deb")
    (debs / bad.filename).write_bytes(b"corrupted")
    calls: list[list[str]] = []

    def fake_apt(argv: list[str], cache: Path | None, cwd: Path | None = None) -> str:
        calls.append(list(argv))
        assert cwd is not None
        (cwd / bad.filename).write_bytes(b"bad deb")
        return ""

    monkeypatch.setattr(apt, "_run", fake_apt)
    messages: list[str] = []
    paths = apt.fetch([good, bad], debs, messages.append)
    assert calls == [["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", "bad=1.0"]]
    assert paths == {"good": debs / good.filename, "bad": debs / bad.filename}
    assert (debs / bad.filename).read_bytes() == b"bad deb"
    assert messages == ["1 packages cached, downloading 1"]
    assert sorted(p.name for p in debs.iterdir()) == sorted([good.filename, bad.filename])

    calls.clear()
    apt.fetch([good, bad], debs)
    assert calls == []


def test_a_download_with_the_wrong_hash_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _package("pkg", b"expected")

    def fake_apt(argv: list[str], cache: Path | None, cwd: Path | None = None) -> str:
        assert cwd is not None
        (cwd / pkg.filename).write_bytes(b"tampered")
        return ""

    monkeypatch.setattr(apt, "_run", fake_apt)
    with pytest.raises(RuntimeBuildFailed, match=r"no valid pkg_1\.0_all\.deb"):
        apt.fetch([pkg], tmp_path)
    assert not (tmp_path / pkg.filename).exists()


def test_without_apt_the_error_points_to_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for call in (lambda: apt.resolve(["python3.11"]), lambda: apt.candidates(["python3.11"])):
        with pytest.raises(RuntimeBuildFailed, match=r"apt-cache not found: .*--base IMAGE") as failure:
            call()
        assert "\n" not in failure.value.message


@pytest.mark.skipif(not apt.shutil.which("apt-cache"), reason="needs a Debian host's apt")
def test_the_real_closure_of_python_keeps_perl_and_debconf_out(tmp_path: Path) -> None:
    names = apt.resolve(["python3.11", "busybox-static", "tzdata"], cache=tmp_path)
    assert {"python3.11", "libpython3.11-stdlib", "libc6", "libssl3", "media-types", "tzdata"} <= set(names)
    assert not [n for n in names if denied(n, DEFAULT_DENY)]
    found: Any = apt.candidates(names, cache=tmp_path)
    assert set(found) == set(names)


SHOW_VERSIONS = """\
Package: nodejs
Version: 20.20.2-1nodesource1
Architecture: amd64
Status: install ok installed

Package: nodejs
Version: 18.20.4+dfsg-1~deb12u3
Architecture: amd64
SHA256: aa
Size: 10

Package: nodejs
Version: 18.20.4+dfsg-1~deb12u2
Architecture: amd64
SHA256: bb
Size: 11
"""


def test_a_pin_takes_the_newest_version_matching_its_glob() -> None:
    assert parse_show(SHOW_VERSIONS, {"nodejs": "18.*"})["nodejs"].version == "18.20.4+dfsg-1~deb12u3"
    assert parse_show(SHOW_VERSIONS, {"nodejs": "18.20.4+dfsg-1~deb12u2"})["nodejs"].sha256 == "bb"
    assert "nodejs" not in parse_show(SHOW_VERSIONS, {"nodejs": "16.*"})


def test_pins_resolve_against_this_hosts_apt(tmp_path: Path) -> None:
    """bookworm's nodejs 18 is found even where apt's candidate is another release (a newer nodejs installed)."""
    found = apt.pinned({"nodejs": "18.*", "ruby3.1": "3.1.*"}, cache=tmp_path)
    assert found["nodejs"].version.startswith("18.")
    assert found["ruby3.1"].version.startswith("3.1.")
    with pytest.raises(RuntimeBuildFailed, match=r"apt has no nodejs 7\.\*"):
        apt.pinned({"nodejs": "7.*"}, cache=tmp_path)

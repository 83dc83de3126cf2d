"""Root filesystem assembly and the image tar, on small fake packages (no apt, no docker)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from mayfly.core.errors import RuntimeBuildFailed
from mayfly.runtimes import rootfs, tarball

HOST_BUSYBOX = shutil.which("busybox")
needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def make_deb(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    """A minimal .deb holding ``files`` (paths relative to /)."""
    src = tmp_path / f"{name}-src"
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: test\n"
    )
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    out = tmp_path / f"{name}_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(src), str(out)], check=True, capture_output=True
    )
    return out


@needs_dpkg_deb
def test_only_matching_files_are_taken_from_a_partial_package(tmp_path: Path) -> None:
    deb = make_deb(
        tmp_path,
        "stdlib",
        {
            "usr/lib/py/json/__init__.py": b"j",
            "usr/lib/py/json/decoder.py": b"d",
            "usr/lib/py/big.py": b"b",
        },
    )
    root = tmp_path / "root"
    root.mkdir()
    assert rootfs.extract_files(deb, root, ["usr/lib/py/json/*"]) == 2
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "usr/lib/py/json/__init__.py",
        "usr/lib/py/json/decoder.py",
    ]
    with pytest.raises(RuntimeBuildFailed, match="no file matching"):
        rootfs.extract_files(deb, root, ["nothing/*"])


def test_the_ca_bundle_concatenates_every_packaged_certificate(tmp_path: Path) -> None:
    certs = tmp_path / rootfs.CA_SOURCES / "mozilla"
    certs.mkdir(parents=True)
    (certs / "b.crt").write_bytes(b"B-CERT")
    (certs / "a.crt").write_bytes(b"A-CERT\n")
    (certs / "README").write_bytes(b"not a cert")
    assert rootfs.add_ca_bundle(tmp_path) == 2
    assert (tmp_path / rootfs.CA_BUNDLE).read_bytes() == b"A-CERT\nB-CERT\n"
    assert os.readlink(tmp_path / "usr/lib/ssl/cert.pem") == "/etc/ssl/certs/ca-certificates.crt"


def test_no_certificates_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeBuildFailed, match="no CA certificates"):
        rootfs.add_ca_bundle(tmp_path)


@pytest.mark.skipif(HOST_BUSYBOX is None, reason="needs busybox")
def test_busybox_applets_are_linked_where_nothing_else_is(tmp_path: Path) -> None:
    assert HOST_BUSYBOX is not None
    (tmp_path / "bin").mkdir()
    shutil.copy(HOST_BUSYBOX, tmp_path / "bin" / "busybox")
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "env").write_text("a real env")
    assert rootfs.add_busybox_applets(tmp_path) > 100
    assert os.readlink(tmp_path / "bin" / "sh") == "/bin/busybox"
    assert (tmp_path / "usr" / "bin" / "env").read_text() == "a real env"


def test_without_busybox_the_error_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(RuntimeBuildFailed, match="busybox-static"):
        rootfs.add_busybox_applets(tmp_path)


def test_the_image_tar_is_owned_by_root_keeps_modes_and_skips_docs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rootfs.add_base_dirs(root)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-alias")
    rootfs.add_links(root, {"usr/bin/t": "tool"})
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/copyright").write_text("license")
    (root / "usr/share/doc/pkg/changelog.gz").write_bytes(b"x")
    (root / "usr/share/man/man1").mkdir(parents=True)
    (root / "usr/share/man/man1/tool.1.gz").write_bytes(b"x")
    (root / "usr/lib/x/gconv").mkdir(parents=True)
    (root / "usr/lib/x/gconv/UTF-7.so").write_bytes(b"x")
    buf = io.BytesIO()
    tarball.write_tar(root, buf, (*tarball.DEFAULT_EXCLUDE, "usr/lib/*/gconv", "usr/lib/*/gconv/*"))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "root")}
    assert members["tmp"].mode == 0o1777
    assert members["root"].mode == 0o700
    assert members["usr/bin/tool"].mode == 0o755
    assert members["usr/bin/t"].issym()
    assert members["usr/bin/t"].linkname == "tool"
    assert members["usr/bin/tool-alias"].islnk() or members["usr/bin/tool"].islnk()
    assert "usr/share/doc/pkg/copyright" in members
    assert "usr/share/doc/pkg/changelog.gz" not in members
    assert "usr/share/man/man1/tool.1.gz" not in members
    assert not [name for name in members if "gconv" in name]

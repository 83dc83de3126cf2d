"""Tests of the untrusted-archive guard: every hostile zip is built here with struct/zipfile."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from mayfly.core import archive
from mayfly.core.archive import ArchiveError, ArchiveLimits, extract_zip, validate_zip, zip_directory

STORED, DEFLATED = 0, 8
REG, DIR = stat.S_IFREG, stat.S_IFDIR
MiB = 1 << 20


@dataclass
class Raw:
    """One member of a hand-built zip; every field the attacker controls can be forged."""

    name: str | bytes
    data: bytes = b""
    method: int = STORED
    mode: int = REG | 0o644  # st_mode, stored in the high 16 bits of external_attr
    create_system: int = 3
    flags: int = 0
    extra: bytes = b""
    crc: int | None = None  # declared CRC (default: the real one)
    size: int | None = None  # declared uncompressed size (default: the real one)
    csize: int | None = None  # declared compressed size (default: the real one)
    payload: bytes | None = None  # bytes after the local header (default: data, compressed by method)
    at: int | None = None  # central entry only, pointing at this offset; no local header written


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def build(members: list[Raw], *, count: int | None = None, zip64: bool = False) -> bytes:
    """Lay out local headers, a central directory and an end record exactly as told."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode() if isinstance(m.name, str) else m.name
        flags = m.flags | (0x800 if not name.isascii() else 0)
        payload = m.payload if m.payload is not None else deflate(m.data) if m.method == DEFLATED else m.data
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        size = len(m.data) if m.size is None else m.size
        csize = len(payload) if m.csize is None else m.csize
        offset = len(out) if m.at is None else m.at
        if m.at is None:
            out += struct.pack(
                "<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, flags, m.method, 0, 0x21, crc, csize, size, len(name), 0
            )
            out += name + payload
        extra = m.extra
        if zip64:
            extra += struct.pack("<2H3Q", 1, 24, size, csize, offset)
            size = csize = offset = 0xFFFFFFFF
        central += struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            20,
            m.create_system,
            20,
            0,
            flags,
            m.method,
            0,
            0x21,
            crc,
            csize,
            size,
            len(name),
            len(extra),
            0,
            0,
            0,
            m.mode << 16,
            offset,
        )
        central += name + extra
    cd_offset, n = len(out), len(members) if count is None else count
    out += central
    if zip64:
        z = len(out)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, z, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), cd_offset, 0)
    return bytes(out)


def ok(*names: str) -> list[Raw]:
    return [Raw(name, data=f"content of {name}".encode()) for name in names]


def python_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", "print('hello')\n" * 100)
        zf.writestr("lib/util.py", "X = 1\n")
    return buf.getvalue()


def tiny_entries(n: int, count: int | None = None) -> bytes:
    """n empty stored files, built directly (zipfile needs seconds for 100,000)."""
    local, central = [], []
    offset = 0
    for i in range(n):
        name = b"%d" % i
        local.append(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name)
        central.append(
            struct.pack(
                "<4s4B4HL2L5H2L",
                b"PK\x01\x02",
                20,
                3,
                20,
                0,
                0,
                0,
                0,
                0x21,
                0,
                0,
                0,
                len(name),
                0,
                0,
                0,
                0,
                (REG | 0o644) << 16,
                offset,
            )
            + name
        )
        offset += len(local[-1])
    cd = b"".join(central)
    total = n if count is None else count
    end = b""
    if total > 0xFFFF:  # the count needs a zip64 end record
        end += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, total, total, len(cd), offset)
        end += struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(cd), 1)
    end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(total, 0xFFFF), min(total, 0xFFFF), len(cd), offset, 0)
    return b"".join(local) + cd + end


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


def quoted_overlap() -> bytes:
    """A stored entry whose data quotes a whole second entry, which the central directory also lists."""
    inner = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0x21, zlib.crc32(b"boom"), 4, 4, 5, 0)
    inner += b"b.txt" + b"boom"
    return build([Raw("a.txt", data=inner), Raw("b.txt", data=b"boom", at=30 + len("a.txt"))])


def unix_extra_with_link(target: bytes) -> bytes:
    """PKWARE Unix extra field (0x000d): atime, mtime, uid, gid, then the link target."""
    body = struct.pack("<2L2H", 0, 0, 0, 0) + target
    return struct.pack("<2H", 0x000D, len(body)) + body


Factory = Callable[[], bytes]
CASES: list[tuple[str, Factory, str, ArchiveLimits]] = [
    # -- zip slip and other name tricks
    ("dotdot", lambda: build(ok("../../x")), "entry '../../x': path escapes the package (..)", ArchiveLimits()),
    ("inner-dotdot", lambda: build(ok("a/../../x")), "entry 'a/../../x': path escapes", ArchiveLimits()),
    ("absolute", lambda: build(ok("/abs")), "entry '/abs': absolute path", ArchiveLimits()),
    ("backslash-dotdot", lambda: build(ok("..\\x")), "entry '..\\\\x': name contains a backslash", ArchiveLimits()),
    ("drive-backslash", lambda: build(ok("C:\\x")), "entry 'C:\\\\x': drive path", ArchiveLimits()),
    ("drive-relative", lambda: build(ok("C:x")), "entry 'C:x': drive path", ArchiveLimits()),
    (
        "nul",
        lambda: build([Raw(b"a.txt\x00.sh", b"x")]),
        "entry 'a.txt\\x00.sh': name contains a NUL byte",
        ArchiveLimits(),
    ),
    ("empty-name", lambda: build([Raw(b"", b"x")]), "entry '': name is empty", ArchiveLimits()),
    (
        "dot-component",
        lambda: build(ok("./a.txt")),
        "entry './a.txt': path has an empty or '.' component",
        ArchiveLimits(),
    ),
    ("double-slash", lambda: build(ok("a//b.txt")), "entry 'a//b.txt': path has an empty", ArchiveLimits()),
    ("bad-utf8", lambda: build([Raw(b"\xff.txt", b"x", flags=0x800)]), "name is not valid UTF-8", ArchiveLimits()),
    ("too-long", lambda: build(ok("a" * 11)), "name is longer than 10 characters", ArchiveLimits(max_path_length=10)),
    (
        "too-deep",
        lambda: build(ok("a/b/c/d.txt")),
        "entry 'a/b/c/d.txt': path is deeper than 3 levels",
        ArchiveLimits(max_depth=3),
    ),
    ("duplicate", lambda: build(ok("a.txt", "a.txt")), "entry 'a.txt': duplicate entry", ArchiveLimits()),
    (
        "case-collision",
        lambda: build(ok("A.txt", "a.txt")),
        "entry 'a.txt': collides with 'A.txt' when case is ignored",
        ArchiveLimits(),
    ),
    (
        "case-collision-dir",
        lambda: build(ok("Lib/x.py", "lib/y.py")),
        "entry 'lib/y.py': collides with 'Lib' when case is ignored",
        ArchiveLimits(),
    ),
    (
        "file-then-dir",
        lambda: build(ok("a", "a/b.txt")),
        "entry 'a/b.txt': 'a' is both a file and a directory",
        ArchiveLimits(),
    ),
    (
        "dir-then-file",
        lambda: build([Raw("a/", mode=DIR | 0o755), *ok("a")]),
        "entry 'a': 'a' is both a file and a directory",
        ArchiveLimits(),
    ),
    # -- entry types
    (
        "symlink-inside",
        lambda: build([*ok("a.txt"), Raw("link", b"a.txt", mode=stat.S_IFLNK | 0o777)]),
        "entry 'link': symlink not allowed",
        ArchiveLimits(),
    ),
    (
        "symlink-outside",
        lambda: build([*ok("a.txt"), Raw("link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)]),
        "entry 'link': symlink not allowed",
        ArchiveLimits(),
    ),
    (
        "symlink-fat-host",
        lambda: build([*ok("a.txt"), Raw("ln", b"../x", mode=stat.S_IFLNK | 0o777, create_system=0)]),
        "entry 'ln': symlink not allowed",
        ArchiveLimits(),
    ),
    (
        "fifo",
        lambda: build([*ok("a.txt"), Raw("fifo", mode=stat.S_IFIFO | 0o644)]),
        "entry 'fifo': FIFO not allowed",
        ArchiveLimits(),
    ),
    (
        "char-device",
        lambda: build([*ok("a.txt"), Raw("null", mode=stat.S_IFCHR | 0o666)]),
        "entry 'null': character device not allowed",
        ArchiveLimits(),
    ),
    (
        "block-device",
        lambda: build([*ok("a.txt"), Raw("sda", mode=stat.S_IFBLK | 0o660)]),
        "entry 'sda': block device not allowed",
        ArchiveLimits(),
    ),
    (
        "socket",
        lambda: build([*ok("a.txt"), Raw("sock", mode=stat.S_IFSOCK | 0o777)]),
        "entry 'sock': socket not allowed",
        ArchiveLimits(),
    ),
    (
        "hardlink",
        lambda: build([*ok("a.txt"), Raw("h.txt", b"", extra=unix_extra_with_link(b"/etc/shadow"))]),
        "entry 'h.txt': hard link or special file",
        ArchiveLimits(),
    ),
    (
        "dir-mode-no-slash",
        lambda: build([*ok("a.txt"), Raw("d", mode=DIR | 0o755)]),
        "entry 'd': directory mode on a name without a trailing '/'",
        ArchiveLimits(),
    ),
    (
        "encrypted",
        lambda: build([Raw("secret.py", b"x" * 40, flags=0x1)]),
        "entry 'secret.py': encrypted entries are not supported",
        ArchiveLimits(),
    ),
    (
        "bzip2",
        lambda: build([Raw("a.py", b"x", method=12, payload=b"BZh91AY&SY")]),
        "entry 'a.py': unsupported compression method 12 (bzip2)",
        ArchiveLimits(),
    ),
    # -- not a zip, truncated, corrupt
    (
        "not-a-zip",
        lambda: b"#!/bin/sh\necho this is not a zip\n" * 3,
        "not a valid zip file: no end of central directory record",
        ArchiveLimits(),
    ),
    ("zero-bytes", lambda: b"", "not a valid zip file: no end of central directory record", ArchiveLimits()),
    ("truncated-half", lambda: python_zip()[: len(python_zip()) // 2], "not a valid zip file", ArchiveLimits()),
    ("truncated-end-record", lambda: python_zip()[:-1], "not a valid zip file", ArchiveLimits()),
    (
        "prepended-data",
        lambda: b"#!/bin/sh\n" + python_zip(),
        "not a valid zip file: central directory is not where",
        ArchiveLimits(),
    ),
    (
        "local-name-differs",
        lambda: patched(build(ok("main.py")), b"main.py", b"evil.py"),
        "entry 'main.py': local header disagrees with the central directory",
        ArchiveLimits(),
    ),
    (
        "crc-mismatch",
        lambda: build([Raw("a.txt", b"hello", crc=0x12345678)]),
        "entry 'a.txt': CRC mismatch",
        ArchiveLimits(),
    ),
    (
        "corrupt-deflate",
        lambda: build([Raw("a.txt", b"hello" * 20, method=DEFLATED, payload=b"\xff" * 30)]),
        "entry 'a.txt': corrupt compressed data",
        ArchiveLimits(),
    ),
    (
        "stored-size-mismatch",
        lambda: build([Raw("a.txt", b"hello", csize=3)]),
        "entry 'a.txt': stored entry with different compressed and uncompressed sizes",
        ArchiveLimits(),
    ),
    # -- zip bombs and forged sizes
    (
        "ratio-bomb",
        lambda: build([Raw("zeros.bin", bytes(50 * MiB), method=DEFLATED)]),
        "entry 'zeros.bin': compression ratio",
        ArchiveLimits(),
    ),
    (
        "file-too-large",
        lambda: build([Raw("big.bin", bytes(2000))]),
        "entry 'big.bin': file is too large (2000 bytes > 1000)",
        ArchiveLimits(max_file_size=1000),
    ),
    (
        "total-too-large",
        lambda: build([Raw("a.bin", bytes(2000)), Raw("b.bin", bytes(2000))]),
        "entry 'b.bin': package exceeds 3000 bytes when extracted",
        ArchiveLimits(max_total_size=3000),
    ),
    (
        "real-size-exceeds-declared",
        lambda: build([Raw("a.bin", bytes(4 * MiB), method=DEFLATED, size=1000)]),
        "entry 'a.bin': data is larger than its declared size",
        ArchiveLimits(),
    ),
    (
        "real-size-below-declared",
        lambda: build([Raw("a.bin", b"abc" * 100, method=DEFLATED, size=301)]),
        "entry 'a.bin': data is smaller than its declared size",
        ArchiveLimits(),
    ),
    (
        "forged-compress-size-huge",
        lambda: build([Raw("a.bin", b"x" * 100, method=DEFLATED, csize=0xFFFFFFF0)]),
        "entry 'a.bin': data overlaps another entry or the central directory (possible zip bomb)",
        ArchiveLimits(),
    ),
    (
        "forged-compress-size-spans-next",
        lambda: build([Raw("a.bin", b"x" * 100, method=DEFLATED, csize=60), *ok("b.txt")]),
        "entry 'a.bin': data overlaps another entry",
        ArchiveLimits(),
    ),
    (
        "forged-compress-size-short",
        lambda: build([Raw("a.bin", os.urandom(5000), method=DEFLATED, csize=1000)]),
        "entry 'a.bin': compressed data is truncated",
        ArchiveLimits(),
    ),
    (
        "header-offset-past-the-end",
        lambda: build([*ok("a.txt"), Raw("b.txt", b"x", at=(1 << 64) - 2)], zip64=True),
        "entry 'b.txt': data overlaps another entry or the central directory",
        ArchiveLimits(),
    ),
    (
        "same-local-header",
        lambda: build([*ok("a.txt"), Raw("b.txt", b"content of a.txt", at=0)]),
        "entry 'a.txt': data overlaps another entry or the central directory (possible zip bomb)",
        ArchiveLimits(),
    ),
    ("quoted-overlap", quoted_overlap, "entry 'a.txt': data overlaps another entry", ArchiveLimits()),
    ("100k-entries", lambda: tiny_entries(100_000), "package has too many entries (100000 > 10000)", ArchiveLimits()),
    (
        "100k-entries-count-forged",
        lambda: tiny_entries(100_000, count=1),
        "not a valid zip file: central directory holds more entries than the end record declares",
        ArchiveLimits(),
    ),
    (
        "entries-over-lowered-cap",
        lambda: tiny_entries(20),
        "package has too many entries (20 > 10)",
        ArchiveLimits(max_entries=10),
    ),
    # -- nothing to run
    ("empty-zip", lambda: build([]), "package is empty", ArchiveLimits()),
    (
        "only-dirs",
        lambda: build([Raw("a/", mode=DIR | 0o755), Raw("a/b/", mode=DIR | 0o755)]),
        "package is empty",
        ArchiveLimits(),
    ),
]


@pytest.fixture
def tmp_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp dir for this test, so 'no temp files left' can be checked exactly."""
    t = tmp_path / "tmp"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    monkeypatch.setenv("TMPDIR", str(t))
    return t


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Relative path -> (permission bits, content or None for directories), without following symlinks."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode), p
            rel = p.relative_to(root).as_posix()
            out[rel] = (stat.S_IMODE(st.st_mode), None if stat.S_ISDIR(st.st_mode) else p.read_bytes())
    return out


@pytest.mark.parametrize(("factory", "message", "limits"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_hostile_zip_is_rejected_and_leaves_nothing(
    factory: Factory, message: str, limits: ArchiveLimits, tmp_path: Path, tmp_env: Path
) -> None:
    data = factory()
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(data)

    with pytest.raises(ArchiveError, match=re.escape(message)) as caught:
        validate_zip(io.BytesIO(data), limits)
    assert "\n" not in str(caught.value)

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=re.escape(message)):
        extract_zip(pkg, dest, limits)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "pkg.zip", "tmp"]
    assert list(tmp_env.iterdir()) == []
    assert pkg.read_bytes() == data


# ------------------------------------------------------------------ accepted archives


def test_validate_reads_paths_and_file_objects(tmp_path: Path) -> None:
    data = python_zip()
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(data)
    expected = [
        archive.ArchiveEntry("main.py", 1500, False, 0o644),
        archive.ArchiveEntry("lib/util.py", 6, False, 0o644),
    ]
    assert validate_zip(pkg) == expected
    assert validate_zip(str(pkg)) == expected
    assert validate_zip(io.BytesIO(data)) == expected
    with pkg.open("rb") as f:
        assert validate_zip(f) == expected


def test_modes_keep_only_the_execute_bit() -> None:
    data = build(
        [
            Raw("setuid", b"x", mode=REG | stat.S_ISUID | 0o755),
            Raw("setgid", b"x", mode=REG | stat.S_ISGID | 0o640),
            Raw("user-exec", b"x", mode=REG | 0o700),
            Raw("sticky/", mode=DIR | stat.S_ISVTX | 0o777),
            Raw("dos-file", b"x", mode=0, create_system=0),
            Raw("dos-dir/", mode=0, create_system=0),
        ]
    )
    modes = {e.name: (e.mode, e.is_dir) for e in validate_zip(io.BytesIO(data))}
    assert modes == {
        "setuid": (0o755, False),
        "setgid": (0o644, False),
        "user-exec": (0o755, False),
        "sticky": (0o755, True),
        "dos-file": (0o644, False),
        "dos-dir": (0o755, True),
    }


def test_extract_applies_modes_and_creates_parents(tmp_path: Path) -> None:
    data = build(
        [
            Raw("bin/run", b"#!/bin/sh\n", mode=REG | stat.S_ISUID | 0o4755),
            Raw("a/b/c.txt", b"deep", method=DEFLATED),
            Raw("empty/", mode=DIR | 0o700),
            Raw("java-dir/", method=DEFLATED, mode=0, create_system=0),  # Java deflates an empty stream for dirs
        ]
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    entries = extract_zip(io.BytesIO(data), dest)
    assert [e.name for e in entries] == ["bin/run", "a/b/c.txt", "empty", "java-dir"]
    assert tree(dest) == {
        "bin": (0o755, None),
        "bin/run": (0o755, b"#!/bin/sh\n"),
        "a": (0o755, None),
        "a/b": (0o755, None),
        "a/b/c.txt": (0o644, b"deep"),
        "empty": (0o755, None),
        "java-dir": (0o755, None),
    }


def test_data_descriptors_from_a_streaming_writer(tmp_path: Path) -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.py", "print(1)\n" * 1000)
        zf.writestr("empty.txt", "")
    data = bytes(sink.data)
    assert all(i.flag_bits & 0x08 for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_zip(io.BytesIO(data), dest)
    assert (dest / "main.py").read_text() == "print(1)\n" * 1000
    assert (dest / "empty.txt").read_bytes() == b""


def test_zip64_records_are_understood(tmp_path: Path) -> None:
    data = build([Raw("a.txt", b"hello", method=DEFLATED), Raw("b/c.txt", b"world")], zip64=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert [e.name for e in extract_zip(io.BytesIO(data), dest)] == ["a.txt", "b/c.txt"]
    assert (dest / "a.txt").read_bytes() == b"hello"
    assert (dest / "b" / "c.txt").read_bytes() == b"world"


def test_nested_zip_bomb_is_just_a_file(tmp_path: Path) -> None:
    """42.zip-style nesting: we never recurse, so an inner bomb is an ordinary file within the caps."""
    inner = build([Raw(f"layer{i}.bin", bytes(20 * MiB), method=DEFLATED) for i in range(4)])
    outer = build([Raw("main.py", b"print(1)\n"), Raw("bomb.zip", inner, method=DEFLATED)])
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_zip(io.BytesIO(outer), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["bomb.zip", "main.py"]
    assert (dest / "bomb.zip").read_bytes() == inner


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    """A 64 MiB deflated member (ratio cap lifted) and an 8 MiB stored one are read chunk by chunk."""
    pkg = tmp_path / "big.zip"
    pkg.write_bytes(build([Raw("zeros.bin", bytes(64 * MiB), method=DEFLATED), Raw("random.bin", os.urandom(8 * MiB))]))
    tracemalloc.start()
    try:
        entries = validate_zip(pkg, ArchiveLimits(max_ratio=10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.size for e in entries] == [64 * MiB, 8 * MiB]
    assert peak < 4 * MiB


# ------------------------------------------------------------------ extraction safety


def test_dest_must_be_an_empty_directory(tmp_path: Path) -> None:
    data = build(ok("main.py"))
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="is not a usable directory"):
        extract_zip(io.BytesIO(data), dest)
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="is not empty"):
        extract_zip(io.BytesIO(data), dest)
    assert tree(dest) == {"keep.txt": (0o644, b"mine")}


def _members_data_hook(monkeypatch: pytest.MonkeyPatch, on_call: int, action: Callable[[], None]) -> None:
    """Run ``action`` when archive._member_data is called for the on_call-th time (1-based)."""
    real = archive._member_data
    calls = 0

    def hooked(fp: BinaryIO, m: archive._Member) -> Iterator[bytes]:
        nonlocal calls
        calls += 1
        if calls == on_call:
            action()
        yield from real(fp, m)

    monkeypatch.setattr(archive, "_member_data", hooked)


def test_failure_mid_extraction_removes_everything(
    tmp_path: Path, tmp_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [Raw("a.txt", b"a"), Raw("d/b.txt", b"b"), Raw("d/e/c.txt", b"c"), Raw("z.txt", b"z")]
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(build(members))
    dest = tmp_path / "dest"
    dest.mkdir()

    def disk_full() -> None:
        assert (dest / "d" / "b.txt").exists()  # earlier members really were written
        raise OSError(errno.ENOSPC, "No space left on device")

    # Validation reads each member once; the 4th member's extraction is call 4 + 4.
    _members_data_hook(monkeypatch, len(members) + 4, disk_full)
    with pytest.raises(OSError, match="No space left"):
        extract_zip(pkg, dest)
    assert list(dest.iterdir()) == []
    assert list(tmp_env.iterdir()) == []


def test_symlink_planted_during_extraction_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(build([Raw("a.txt", b"a"), Raw("b/evil.txt", b"pwned")]))
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    _members_data_hook(monkeypatch, 3, lambda: (dest / "b").symlink_to(outside))
    with pytest.raises(ArchiveError, match=re.escape("entry 'b/evil.txt': path component 'b' is a symlink")):
        extract_zip(pkg, dest)
    assert list(outside.iterdir()) == []
    assert list(dest.iterdir()) == []


# ------------------------------------------------------------------ zip_directory


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "data" / "empty").mkdir(parents=True)
    (root / "main.py").write_text("import pkg\n")
    (root / "run.sh").write_text("#!/bin/sh\nexec python3 main.py\n")
    (root / "run.sh").chmod(0o755)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "mod.py").write_text("X = 1\n")
    (root / "pkg" / "café.txt").write_text("unicode name\n")
    (root / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "suid").write_bytes(b"x")
    (root / "suid").chmod(0o4750)
    return root


def test_directory_round_trips(src: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    zip_directory(src, buf)
    names = [i.filename for i in zipfile.ZipFile(io.BytesIO(buf.getvalue())).infolist()]
    assert names == sorted(names)
    assert "data/empty/" in names
    assert not any(n in names for n in ("data/", "pkg/", "pkg/sub/"))  # non-empty dirs are implied
    dest = tmp_path / "dest"
    dest.mkdir()
    extract_zip(io.BytesIO(buf.getvalue()), dest)
    expected = tree(src)
    for rel, (mode, content) in expected.items():
        expected[rel] = (0o755 if content is None or mode & 0o111 else 0o644, content)
    assert tree(dest) == expected
    assert tree(dest)["run.sh"][0] == 0o755
    assert tree(dest)["suid"][0] == 0o755


def test_directory_zip_is_deterministic(src: Path) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    zip_directory(src, first)
    for p in src.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    zip_directory(src, second)
    assert first.getvalue() == second.getvalue()
    infos = zipfile.ZipFile(io.BytesIO(first.getvalue())).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos if not i.is_dir()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda d: (d / "pkg" / "link").symlink_to("../main.py"),
            "path 'pkg/link': symlink not allowed",
            id="symlink-inside",
        ),
        pytest.param(
            lambda d: (d / "etc").symlink_to("/etc"), "path 'etc': symlink not allowed", id="symlink-outside-dir"
        ),
        pytest.param(lambda d: os.mkfifo(d / "pkg" / "fifo"), "path 'pkg/fifo': FIFO not allowed", id="fifo"),
        pytest.param(
            lambda d: (d / "a\\b.py").write_text(""), "path 'a\\\\b.py': name contains a backslash", id="backslash"
        ),
        pytest.param(
            lambda d: (d / "Main.py").write_text(""),
            "path 'main.py': collides with 'Main.py' when case is ignored",
            id="case-collision",
        ),
    ],
)
def test_directory_with_unsafe_entries_is_rejected(src: Path, make: Callable[[Path], object], message: str) -> None:
    make(src)
    with pytest.raises(ArchiveError, match=re.escape(message)):
        zip_directory(src, io.BytesIO())


def test_directory_caps_and_emptiness(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=re.escape("package has too many entries (more than 3)")):
        zip_directory(src, io.BytesIO(), ArchiveLimits(max_entries=3))
    with pytest.raises(ArchiveError, match=re.escape("path 'blob.bin': file is too large (300000 bytes > 1000)")):
        zip_directory(src, io.BytesIO(), ArchiveLimits(max_file_size=1000))
    with pytest.raises(ArchiveError, match=re.escape("package exceeds 100000 bytes when extracted")):
        zip_directory(src, io.BytesIO(), ArchiveLimits(max_total_size=100_000))
    bare = tmp_path / "bare"
    (bare / "only" / "dirs").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="package is empty"):
        zip_directory(bare, io.BytesIO())


def test_directory_with_a_bomb_file_is_refused_like_an_upload(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "zeros.bin").write_bytes(bytes(8 * MiB))
    with pytest.raises(ArchiveError, match=re.escape("path 'zeros.bin': compresses beyond 200:1")):
        zip_directory(root, io.BytesIO())


def test_file_swapped_for_a_fifo_after_the_walk_does_not_hang(src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = archive._walk

    def walk_then_swap(base: Path, rel: str, names: archive._Names) -> Iterator[tuple[str, Path, int]]:
        yield from real(base, rel, names)
        if not rel:
            (src / "main.py").unlink()
            os.mkfifo(src / "main.py")

    monkeypatch.setattr(archive, "_walk", walk_then_swap)
    with pytest.raises(ArchiveError, match=re.escape("path 'main.py': file changed while being packaged")):
        zip_directory(src, io.BytesIO())

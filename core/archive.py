"""Safe handling of untrusted code-package zips.

Threat model: a package is attacker-controlled bytes. Python's ``zipfile`` silently rewrites
``../x`` and ``/abs`` into harmless-looking names, turns symlink entries into regular files
holding the link target, truncates names at a NUL, trusts the declared sizes (a forged
``compress_size`` makes it allocate gigabytes, overlapping entries make a zip bomb), and parses
the whole central directory into objects before anyone can count entries; Debian's Info-ZIP
``unzip`` creates the symlinks. So this module reads zips itself:

* the central directory is parsed with ``struct``, bounded by ``max_entries`` before anything is
  kept, and every local header is checked against it; entries may not overlap;
* every name, type, flag and compression method is checked, and rejected with an
  ``ArchiveError`` whose message is one line naming the entry and the rule;
* data is inflated in 64 KiB chunks and the *real* bytes are counted against the declared
  sizes (which are capped up front), the CRC and the compression ratio;
* extraction goes through directory file descriptors with ``O_NOFOLLOW``/``O_EXCL`` and removes
  everything it wrote on any error.

This module must stay standard-library only and must not import anything from ``mayfly``: the
runtime build copies it into every runtime image, where the boot script uses it as its own
unpacker. Reading needs no ``zipfile`` (it imports ``shutil``, absent from Debian's
python3.11-minimal); only ``zip_directory`` imports it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


class ArchiveError(ValueError):
    """The archive was rejected; the message is one line naming the entry and the rule."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied while validating and extracting."""

    max_entries: int = 10_000
    max_total_size: int = 1 << 30
    max_file_size: int = 512 << 20
    max_ratio: float = 200.0
    max_path_length: int = 1024
    max_depth: int = 32


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class ArchiveEntry:
    """One validated entry."""

    #: Relative POSIX path, without the trailing ``/`` even for directories.
    name: str
    size: int
    is_dir: bool
    #: Unix permission bits worth keeping (0o755 for executables, else 0o644; dirs 0o755).
    mode: int


Source = str | Path | BinaryIO

CHUNK = 64 * 1024
#: Entries smaller than this are not held to ``max_ratio`` (tiny files compress absurdly well).
RATIO_MIN_SIZE = 1 << 20

_STORED, _DEFLATED = 0, 8
_METHOD_NAMES = {
    1: "shrunk",
    6: "imploded",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    96: "jpeg",
    97: "wavpack",
    98: "ppmd",
    99: "aes-encrypted",
}
_FLAG_ENCRYPTED = 0x01 | 0x40  # traditional and strong encryption
_FLAG_PATCHED = 0x20
_FLAG_UTF8 = 0x800

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_SIG_EOCD, _SIG_LOCATOR, _SIG_ZIP64_EOCD = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_SIG_CENTRAL, _SIG_LOCAL = b"PK\x01\x02", b"PK\x03\x04"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _err(name: str, rule: str, label: str = "entry") -> ArchiveError:
    return ArchiveError(f"{label} {name!r}: {rule}")


def _invalid(detail: str) -> ArchiveError:
    return ArchiveError(f"not a valid zip file: {detail}")


def _kind(mode: int) -> str | None:
    """None for regular files, directories and unspecified types; else what the mode describes."""
    fmt = stat.S_IFMT(mode)
    kinds = {
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "FIFO",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
    }
    if fmt in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return kinds.get(fmt, f"file type {fmt:#o}")


def _keep_mode(mode: int, is_dir: bool) -> int:
    return 0o755 if is_dir or mode & 0o111 else 0o644


class _Names:
    """Checks names one by one: the path rules, duplicates, case and file/directory collisions."""

    def __init__(self, limits: ArchiveLimits, label: str = "entry") -> None:
        self.limits = limits
        self.label = label
        self.exact: set[str] = set()
        self.folded: dict[str, tuple[str, bool]] = {}

    def add(self, name: str) -> tuple[str, bool]:
        """Return (path without trailing '/', is_dir) or raise ArchiveError."""

        def fail(rule: str) -> ArchiveError:
            return _err(name, rule, self.label)

        if not name:
            raise fail("name is empty")
        if "\x00" in name:
            raise fail("name contains a NUL byte")
        if name.startswith("/"):
            raise fail("absolute path")
        if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
            raise fail("drive path (like C:)")
        if "\\" in name:
            raise fail("name contains a backslash")
        if len(name) > self.limits.max_path_length:
            raise fail(f"name is longer than {self.limits.max_path_length} characters")
        is_dir = name.endswith("/")
        path = name[:-1] if is_dir else name
        parts = path.split("/")
        if ".." in parts:
            raise fail("path escapes the package (..)")
        if "" in parts or "." in parts:
            raise fail("path has an empty or '.' component")
        if len(parts) > self.limits.max_depth:
            raise fail(f"path is deeper than {self.limits.max_depth} levels")
        if name in self.exact:
            raise fail("duplicate entry")
        self.exact.add(name)
        for i in range(1, len(parts)):
            self._claim(name, "/".join(parts[:i]), True)
        self._claim(name, path, is_dir)
        return path, is_dir

    def _claim(self, name: str, path: str, is_dir: bool) -> None:
        prev = self.folded.setdefault(path.casefold(), (path, is_dir))
        if prev[0] != path:
            raise _err(name, f"collides with {prev[0]!r} when case is ignored", self.label)
        if prev[1] != is_dir:
            raise _err(name, f"{path!r} is both a file and a directory", self.label)


@dataclass
class _Member:
    entry: ArchiveEntry
    zip_name: str
    raw_name: bytes
    method: int
    crc: int
    compress_size: int
    header_offset: int
    data_offset: int = 0


def _end_record(fp: BinaryIO) -> tuple[int, int, int]:
    """Locate the (zip64) end of central directory; return (entry count, cd offset, cd size)."""
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    # The record ends the file exactly (after its comment); a signature inside the comment won't.
    end, pos = len(tail) - _EOCD.size, -1
    while end >= 0:
        pos = tail.rfind(_SIG_EOCD, 0, end + 4)
        if pos < 0 or pos + _EOCD.size + _EOCD.unpack_from(tail, pos)[7] == len(tail):
            break
        end = pos - 1
    if end < 0 or pos < 0:
        raise _invalid("no end of central directory record (truncated, or not a zip)")
    eocd_pos = size - tail_len + pos
    _, disk, cd_disk, disk_count, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    cd_end = eocd_pos
    if eocd_pos >= _ZIP64_LOCATOR.size:
        fp.seek(eocd_pos - _ZIP64_LOCATOR.size)
        locator = fp.read(_ZIP64_LOCATOR.size)
        if locator[:4] == _SIG_LOCATOR:
            _, z_disk, z_offset, z_disks = _ZIP64_LOCATOR.unpack(locator)
            if z_disk != 0 or z_disks > 1:
                raise _invalid("multi-disk archives are not supported")
            if z_offset + _ZIP64_EOCD.size > eocd_pos - _ZIP64_LOCATOR.size:
                raise _invalid("misplaced zip64 end of central directory record")
            fp.seek(z_offset)
            record = fp.read(_ZIP64_EOCD.size)
            if len(record) < _ZIP64_EOCD.size or record[:4] != _SIG_ZIP64_EOCD:
                raise _invalid("corrupt zip64 end of central directory record")
            _, rec_size, _, _, disk, cd_disk, disk_count, count, cd_size, cd_offset = _ZIP64_EOCD.unpack(record)
            if z_offset + 12 + rec_size != eocd_pos - _ZIP64_LOCATOR.size:
                raise _invalid("misplaced zip64 end of central directory record")
            cd_end = z_offset
    if disk != 0 or cd_disk != 0 or disk_count != count:
        raise _invalid("multi-disk archives are not supported")
    # Prepended data (self-extractors) or a corrupt offset: refuse rather than guess the shift.
    if cd_offset + cd_size != cd_end:
        raise _invalid("central directory is not where the end record says")
    return count, cd_offset, cd_size


def _extra_fields(extra: bytes, name: str) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        if i + 4 + length > len(extra):
            raise _err(name, f"corrupt extra field {tag:#06x}")
        fields[tag] = extra[i + 4 : i + 4 + length]
        i += 4 + length
    return fields


def _central_member(fixed: bytes, var: bytes, names: _Names, limits: ArchiveLimits) -> _Member:
    """Check one central directory entry (everything but its data) and describe it."""
    (_, _, _, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, _, _, _, attrs, offset) = (
        _CENTRAL.unpack(fixed)
    )
    raw_name = var[:name_len]
    try:
        name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    except UnicodeDecodeError:
        raise _err(raw_name.decode("utf-8", "replace"), "name is not valid UTF-8") from None
    path, is_dir = names.add(name)
    extra = _extra_fields(var[name_len : name_len + extra_len], name)
    if 0xFFFFFFFF in (usize, csize, offset):
        zip64, pos = extra.get(0x0001, b""), 0
        values = [usize, csize, offset]
        for i, value in enumerate(values):
            if value == 0xFFFFFFFF:
                if pos + 8 > len(zip64):
                    raise _err(name, "missing or corrupt zip64 extra field")
                values[i] = struct.unpack_from("<Q", zip64, pos)[0]
                pos += 8
        usize, csize, offset = values
    # Unix mode bits live in the high 16 bits; Info-ZIP honours them whatever the creating
    # system says, so look at them always (not only when create_system is Unix).
    mode = attrs >> 16
    kind = _kind(mode)
    if kind is not None:
        raise _err(name, f"{kind} not allowed (only regular files and directories)")
    if len(extra.get(0x000D, b"")) > 12:  # PKWARE Unix field: link target or device numbers follow
        raise _err(name, "hard link or special file (PKWARE Unix extra field) not allowed")
    if stat.S_ISDIR(mode) and not is_dir:
        raise _err(name, "directory mode on a name without a trailing '/'")
    if stat.S_ISREG(mode) and is_dir:
        raise _err(name, "regular file mode on a name ending in '/'")
    if flags & _FLAG_ENCRYPTED:
        raise _err(name, "encrypted entries are not supported")
    if flags & _FLAG_PATCHED:
        raise _err(name, "patched-data entries are not supported")
    if method not in (_STORED, _DEFLATED):
        label = _METHOD_NAMES.get(method, "unknown")
        raise _err(name, f"unsupported compression method {method} ({label}); only stored and deflated are allowed")
    if method == _STORED and csize != usize:
        raise _err(name, "stored entry with different compressed and uncompressed sizes")
    if is_dir and usize:
        raise _err(name, "directory entry with data")
    if usize > limits.max_file_size:
        raise _err(name, f"file is too large ({usize} bytes > {limits.max_file_size})")
    if usize > RATIO_MIN_SIZE and usize > limits.max_ratio * csize:
        ratio = f"{usize / csize:.0f}:1" if csize else "infinite"
        raise _err(name, f"compression ratio {ratio} exceeds {limits.max_ratio:g}:1 (possible zip bomb)")
    entry = ArchiveEntry(name=path, size=usize, is_dir=is_dir, mode=_keep_mode(mode, is_dir))
    return _Member(entry, name, raw_name, method, crc, csize, offset)


def _scan(fp: BinaryIO, limits: ArchiveLimits) -> list[_Member]:
    """Parse and check the central directory and local headers; return members in central order."""
    count, cd_offset, cd_size = _end_record(fp)
    if count > limits.max_entries:
        raise ArchiveError(f"package has too many entries ({count} > {limits.max_entries})")
    names = _Names(limits)
    members: list[_Member] = []
    total = read = 0
    fp.seek(cd_offset)
    while read < cd_size:
        # The count was capped above, so a directory longer than declared cannot grow this list.
        if len(members) >= count:
            raise _invalid("central directory holds more entries than the end record declares")
        fixed = fp.read(_CENTRAL.size)
        if len(fixed) < _CENTRAL.size or fixed[:4] != _SIG_CENTRAL:
            raise _invalid(f"corrupt central directory at entry #{len(members) + 1}")
        var_len = sum(struct.unpack_from("<3H", fixed, 28))
        var = fp.read(var_len)
        if len(var) < var_len:
            raise _invalid("truncated central directory")
        read += _CENTRAL.size + var_len
        member = _central_member(fixed, var, names, limits)
        total += member.entry.size
        if total > limits.max_total_size:
            raise _err(member.zip_name, f"package exceeds {limits.max_total_size} bytes when extracted")
        members.append(member)
    if read != cd_size or len(members) != count:
        raise _invalid("central directory size or entry count does not match the end record")
    if all(m.entry.is_dir for m in members):
        raise ArchiveError("package is empty")
    ordered = sorted(members, key=lambda m: m.header_offset)
    for i, m in enumerate(ordered):
        # Each entry must end before the next local header (or the central directory): this
        # rejects the overlapping and "quoted overlap" bombs and any forged compress_size.
        limit = ordered[i + 1].header_offset if i + 1 < len(ordered) else cd_offset
        overlap = _err(m.zip_name, "data overlaps another entry or the central directory (possible zip bomb)")
        if m.header_offset + _LOCAL.size > limit:
            raise overlap
        fp.seek(m.header_offset)
        fixed = fp.read(_LOCAL.size)
        if fixed[:4] != _SIG_LOCAL:
            raise _err(m.zip_name, "local header is missing or corrupt")
        _, _, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(fixed)
        m.data_offset = m.header_offset + _LOCAL.size + name_len + extra_len
        if m.data_offset + m.compress_size > limit:
            raise overlap
        if fp.read(name_len) != m.raw_name or method != m.method or flags & _FLAG_ENCRYPTED:
            raise _err(m.zip_name, "local header disagrees with the central directory")
    return members


def _member_data(fp: BinaryIO, m: _Member) -> Iterator[bytes]:
    """Yield the member's data in chunks of at most CHUNK bytes, checking the real bytes."""
    fp.seek(m.data_offset)
    left, size, crc = m.compress_size, 0, 0
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if m.method == _DEFLATED else None
    while left:
        data = fp.read(min(CHUNK, left))
        if not data:
            raise _err(m.zip_name, "data is truncated")
        left -= len(data)
        while True:
            if inflater is None:
                out, data = data, b""
            else:
                try:
                    out = inflater.decompress(data, CHUNK)
                except zlib.error as exc:
                    raise _err(m.zip_name, f"corrupt compressed data ({exc})") from None
                data = inflater.unconsumed_tail
                if inflater.eof and (left or inflater.unused_data):
                    raise _err(m.zip_name, "compressed stream ends before its declared compressed size")
            # Sizes were capped up front, so bounding the real bytes by the declared size
            # also bounds them by max_file_size and max_total_size.
            size += len(out)
            if size > m.entry.size:
                raise _err(m.zip_name, "data is larger than its declared size")
            crc = zlib.crc32(out, crc)
            if out:
                yield out
            # A full chunk may leave output pending inside zlib even with no input left.
            if not data and len(out) < CHUNK:
                break
    if inflater is not None and not inflater.eof and m.compress_size:
        raise _err(m.zip_name, "compressed data is truncated")
    if size != m.entry.size:
        raise _err(m.zip_name, "data is smaller than its declared size")
    if crc != m.crc:
        raise _err(m.zip_name, "CRC mismatch (corrupt data)")


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    else:
        yield source


def _check_all(fp: BinaryIO, limits: ArchiveLimits) -> list[_Member]:
    members = _scan(fp, limits)
    for m in sorted(members, key=lambda m: m.data_offset):
        for _ in _member_data(fp, m):
            pass
    return members


def validate_zip(source: Source, limits: ArchiveLimits = DEFAULT_LIMITS) -> list[ArchiveEntry]:
    """Check every entry of the zip without writing anything; raise ArchiveError on the first problem."""
    with _opened(source) as fp:
        return [m.entry for m in _check_all(fp, limits)]


def _open_dirs(root: int, parts: list[str], name: str) -> int:
    """Create (as needed) and open the directory root/parts..., never following a symlink."""
    fd = root
    try:
        for part in parts:
            created = True
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                created = False
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _err(name, f"path component {part!r} is a symlink or not a directory") from None
                raise
            if fd != root:
                os.close(fd)
            fd = sub
            if created:
                os.fchmod(fd, 0o755)
        return fd
    except BaseException:
        if fd != root:
            os.close(fd)
        raise


def _write_member(root: int, fp: BinaryIO, m: _Member) -> None:
    parts = m.entry.name.split("/")
    parent = _open_dirs(root, parts if m.entry.is_dir else parts[:-1], m.zip_name)
    try:
        if m.entry.is_dir:
            return
        with os.fdopen(os.open(parts[-1], _FILE_FLAGS, 0o600, dir_fd=parent), "wb") as out:
            for chunk in _member_data(fp, m):
                out.write(chunk)
            out.flush()
            os.fchmod(out.fileno(), m.entry.mode)
    finally:
        if parent != root:
            os.close(parent)


def _clear(dir_fd: int) -> None:
    """Remove everything inside the directory, never following symlinks."""
    with os.scandir(dir_fd) as it:
        children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for child, is_dir in children:
        if is_dir:
            sub = os.open(child, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _clear(sub)
            finally:
                os.close(sub)
            os.rmdir(child, dir_fd=dir_fd)
        else:
            os.unlink(child, dir_fd=dir_fd)


def extract_zip(source: Source, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> list[ArchiveEntry]:
    """Validate, then extract into the existing empty directory ``dest``; nothing is left behind on error."""
    try:
        root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ArchiveError(f"destination {str(dest)!r} is not a usable directory ({exc.strerror})") from None
    try:
        if os.listdir(root):
            raise ArchiveError(f"destination {str(dest)!r} is not empty")
        with _opened(source) as fp:
            members = _check_all(fp, limits)
            try:
                # The data is checked again while writing: the source may change under us.
                for m in sorted(members, key=lambda m: m.data_offset):
                    _write_member(root, fp, m)
            except BaseException:
                with contextlib.suppress(OSError):
                    _clear(root)
                raise
    finally:
        os.close(root)
    return [m.entry for m in members]


def _walk(base: Path, rel: str, names: _Names) -> Iterator[tuple[str, Path, int]]:
    """Yield (zip name, path, size) for the files and empty directories under base/rel, sorted."""
    here = base / rel if rel else base
    with os.scandir(here) as it:
        children = sorted(it, key=lambda e: e.name)
    if rel and not children:
        yield rel + "/", here, 0
    for child in children:
        name = f"{rel}/{child.name}" if rel else child.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise _err(name, "name is not valid UTF-8", "path") from None
        st = child.stat(follow_symlinks=False)
        kind = _kind(st.st_mode)
        if kind is not None:
            raise _err(name, f"{kind} not allowed in a package (only regular files and directories)", "path")
        if stat.S_ISDIR(st.st_mode):
            names.add(name + "/")  # before descending, so a very deep tree stops at max_depth
            yield from _walk(base, name, names)
        else:
            names.add(name)
            yield name, here / child.name, st.st_size


def zip_directory(src: Path, out: BinaryIO, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Write a deterministic zip of ``src`` to ``out``; symlinks and special files are rejected."""
    import zipfile  # here only: the boot script's unpacker must not need it (see module docstring)

    items: list[tuple[str, Path, int]] = []
    total = 0
    for name, path, size in _walk(Path(src), "", _Names(limits, "path")):
        items.append((name, path, size))
        if len(items) > limits.max_entries:
            raise ArchiveError(f"package has too many entries (more than {limits.max_entries})")
        if size > limits.max_file_size:
            raise _err(name, f"file is too large ({size} bytes > {limits.max_file_size})", "path")
        total += size
        if total > limits.max_total_size:
            raise _err(name, f"package exceeds {limits.max_total_size} bytes when extracted", "path")
    if all(name.endswith("/") for name, _, _ in items):
        raise ArchiveError("package is empty")
    # On error `out` holds a partial zip; the caller discards it.
    with zipfile.ZipFile(out, "w") as zf:
        for name, path, size in items:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: the MS-DOS directory bit
                zf.writestr(info, b"")
                continue
            # O_NOFOLLOW/O_NONBLOCK: a file swapped for a symlink or FIFO since the walk must not hang us.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags), "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise _err(name, "file changed while being packaged", "path")
                info.external_attr = (stat.S_IFREG | _keep_mode(mode, False)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = size
                written = 0
                with zf.open(info, "w") as dst:
                    while (chunk := f.read(CHUNK)) and written + len(chunk) <= size:
                        written += len(chunk)
                        dst.write(chunk)
            if written != size or chunk:
                raise _err(name, "file changed while being packaged", "path")
            if size > RATIO_MIN_SIZE and size > limits.max_ratio * info.compress_size:
                raise _err(
                    name, f"compresses beyond {limits.max_ratio:g}:1, which unpacking rejects as a zip bomb", "path"
                )

"""The files a task container sees under /mayfly: building them on the host, packing them, reading the result.

Layout of a task directory (bind-mounted at ``/mayfly``, or packed into a tar for
the archive API)::

    task/           the code package, unpacked by Mayfly's safe unpacker (the working directory)
    payload.json    the task's payload
    config.json     the code's config
    result.json     empty; the task may write its result here (an empty file means "no result")
    secrets/        only when the task has secrets: one file per name, mode 0400, dir 0500, both
                    owned by the task user (mounted read-only over /mayfly/secrets with a bind)

Every entry belongs to the task's uid/gid, so the task can write its result even
when the image itself has no ``/mayfly`` owned by the task user.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from mayfly.core.archive import ArchiveError, extract_zip
from mayfly.core.blobs import BlobStore
from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.errors import InvalidInput, LaunchFailed, Unavailable
from mayfly.core.models import CodeRef, LaunchSpec

#: Where the task directory appears in the container.
MOUNT_POINT = "/mayfly"
SECRETS_NAME = "secrets"
SECRETS_PATH = f"{MOUNT_POINT}/{SECRETS_NAME}"
TASK_DIR = f"{MOUNT_POINT}/task"
RESULT_NAME = "result.json"
RESULT_PATH = f"{MOUNT_POINT}/{RESULT_NAME}"

#: Owner of the task files: (uid, gid), or None when the task user is a name only the image can resolve.
Owner = tuple[int, int] | None

_CHUNK = 1 << 20
#: Tars up to this size stay in memory; bigger code packages spill to a temporary file.
_SPOOL = 8 << 20


def _verify_and_extract(zip_path: Path, code: CodeRef, dest: Path) -> None:
    with zip_path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != code.sha256:
        raise LaunchFailed(
            f"code package {code.key} is corrupt: sha256 {digest} instead of {code.sha256}", retryable=False
        )
    try:
        extract_zip(zip_path, dest)
    except ArchiveError as exc:
        raise LaunchFailed(f"code package {code.key} was rejected: {exc}", retryable=False) from exc


def unpack_code(blobs: BlobStore, code: CodeRef, dest: Path, scratch: Path) -> None:
    """Check the package's sha256, then unpack it safely into the empty directory ``dest``.

    A local blob store is read in place; any other is streamed to a file in ``scratch`` first.
    """
    missing = LaunchFailed(f"code package {code.key} is missing from the target's blob store", retryable=False)
    if isinstance(blobs, LocalBlobStore):
        try:
            path = blobs.local_path(code.key)
        except InvalidInput as exc:
            raise LaunchFailed(f"invalid code package key {code.key!r}", retryable=False) from exc
        if not path.is_file():
            raise missing
        _verify_and_extract(path, code, dest)
        return
    try:
        src = blobs.open(code.key)
    except KeyError:
        raise missing from None
    with src, tempfile.NamedTemporaryFile(dir=scratch, prefix=".code-", suffix=".zip") as tmp:
        shutil.copyfileobj(src, tmp, _CHUNK)
        tmp.flush()
        _verify_and_extract(Path(tmp.name), code, dest)


def _own(path: Path, owner: Owner) -> None:
    """Give ``path`` to the task user, or, when we cannot chown, make it writable for everyone."""
    st = path.lstat()
    if owner is not None and os.geteuid() == 0:
        os.lchown(path, *owner)
        if stat.S_ISDIR(st.st_mode):
            path.chmod(0o755)
    elif stat.S_ISDIR(st.st_mode):
        path.chmod(0o777)
    else:
        path.chmod(stat.S_IMODE(st.st_mode) | 0o666)


def _own_tree(root: Path, owner: Owner) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        _own(base, owner)
        for name in (*dirnames, *filenames):
            if not (base / name).is_dir():
                _own(base / name, owner)


def build_task_dir(dest: Path, spec: LaunchSpec, blobs: BlobStore, owner: Owner) -> None:
    """Create the task directory ``dest`` (which must not exist) for ``spec``, atomically.

    It is assembled in a sibling temporary directory and renamed into place, so a
    crash never leaves a half-built directory under the final name.

    Raises:
        LaunchFailed: the code package is missing, corrupt or unsafe (not retryable),
            or the host's disk failed us (retryable).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (staging / "task").mkdir()
        if spec.code is not None:
            unpack_code(blobs, spec.code, staging / "task", dest.parent)
        (staging / "payload.json").write_bytes(spec.payload)
        (staging / "config.json").write_bytes(spec.config)
        (staging / RESULT_NAME).write_bytes(b"")
        for name in ("payload.json", "config.json", RESULT_NAME):
            (staging / name).chmod(0o644)
        _own_tree(staging, owner)
        if spec.secrets:
            write_secrets(staging / SECRETS_NAME, spec.secrets, owner)
        staging.rename(dest)
    except OSError as exc:
        remove_tree(staging)
        raise LaunchFailed(f"cannot prepare the task directory {dest}: {exc}", retryable=True) from exc
    except BaseException:
        remove_tree(staging)
        raise


def write_secrets(dest: Path, secrets: Mapping[str, bytes], owner: Owner) -> None:
    """One file per secret in the new directory ``dest``: 0400 in a 0500 directory, owned by the task user.

    When the runner cannot give files away (not root, or a user name only the image
    resolves), the task user cannot own them: then they are 0444 in a 0555 directory,
    readable by anyone who can reach the task directory on the host (docs/secrets.md).
    """
    private = owner is not None and os.geteuid() == 0
    dest.mkdir(mode=0o700)
    for name, value in secrets.items():
        path = dest / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(value)
            while view:
                view = view[os.write(fd, view) :]
            if private:
                assert owner is not None
                os.fchown(fd, *owner)
            os.fchmod(fd, 0o400 if private else 0o444)
        finally:
            os.close(fd)
    if private:
        assert owner is not None
        os.chown(dest, *owner)
    dest.chmod(0o500 if private else 0o555)


def pack_task_dir(root: Path, owner: Owner) -> IO[bytes]:
    """A tar of the task directory's content for ``put_archive`` at /mayfly, entries owned by the task user.

    The directory itself is not in the tar: the engine never changes the owner of
    the directory it extracts into, which is why ``result.json`` is pre-created.
    """
    uid, gid = owner if owner is not None else (0, 0)

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        if info.name == SECRETS_NAME or info.name.startswith(f"{SECRETS_NAME}/"):
            if owner is not None:
                info.mode = 0o500 if info.isdir() else 0o400
            else:
                info.mode = 0o555 if info.isdir() else 0o444
        elif owner is None:
            info.mode |= 0o777 if info.isdir() else 0o666
        return info

    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned to the caller, who closes it
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name, recursive=True, filter=owned)
    out.seek(0)
    return out


def result_too_big(size: int, max_bytes: int) -> InvalidInput:
    """The error for a result.json over its cap."""
    return InvalidInput(f"result.json is {size} bytes, over the {max_bytes}-byte limit; it was not kept")


def read_result_file(path: Path, max_bytes: int) -> bytes | None:
    """Read a result file the task wrote on the host side of a bind mount; None if absent or empty.

    The task controls the directory, so the file is opened without following a
    symlink (a link to /etc/shadow would be read by the runner, on the host) and
    must be a regular file (a FIFO would block the runner).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise InvalidInput("result.json is not readable by the runner; write it with mode 0644") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInput("result.json is a symbolic link; only a regular file is kept") from None
        raise Unavailable(f"cannot read {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput("result.json is not a regular file; it was not kept")
        if st.st_size > max_bytes:
            raise result_too_big(st.st_size, max_bytes)
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise Unavailable(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > max_bytes:
        raise result_too_big(len(data), max_bytes)
    return data or None


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the archive API's response)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def read_result_tar(chunks: Iterable[bytes], max_bytes: int) -> bytes | None:
    """Read result.json out of the archive API's tar stream; None if absent or empty."""
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as tar:
        member = tar.next()
        if member is None:
            return None
        if member.issym() or member.islnk():
            raise InvalidInput("result.json is a link; only a regular file is kept")
        if not member.isfile():
            raise InvalidInput("result.json is not a regular file; it was not kept")
        if member.size > max_bytes:
            raise result_too_big(member.size, max_bytes)
        f = tar.extractfile(member)
        data = f.read(max_bytes + 1) if f is not None else b""
    if len(data) > max_bytes:
        raise result_too_big(len(data), max_bytes)
    return data or None


def remove_tree(path: Path) -> None:
    """Delete a task directory; a missing one is fine. Never follows the task's symlinks."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)

"""Code packages: push (zip or directory), revisions, download; every bad package is refused and stores nothing."""

from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeResolver, zip_bytes
from mayfly.core.config import Home, Limits
from mayfly.core.errors import (
    CodeNotFound,
    InvalidArchive,
    InvalidInput,
    MayflyError,
    RevisionNotFound,
    RuntimeNotFound,
    UploadTooLarge,
)
from mayfly.core.store import schema as s


def _stored(mf: Mayfly) -> tuple[int, int, list[str]]:
    """Codes and revisions in the store, and blobs in the blob directory."""
    with mf.store.read() as conn:
        codes = conn.execute(select(func.count()).select_from(s.codes)).scalar_one()
        revs = conn.execute(select(func.count()).select_from(s.code_revisions)).scalar_one()
    return codes, revs, sorted(mf.blobs.list("codes/"))


def _zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


BAD_ZIPS = {
    "zip slip": ([("../../evil.sh", b"x"), ("main.sh", b"")], "entry '../../evil.sh'"),
    "absolute": ([("/etc/cron.d/x", b"x"), ("main.sh", b"")], "entry '/etc/cron.d/x'"),
    "backslash": ([("..\\evil.sh", b"x"), ("main.sh", b"")], "entry '..\\\\evil.sh'"),
    "drive": ([("C:\\x.sh", b"x"), ("main.sh", b"")], "entry 'C:\\\\x.sh'"),
    "duplicate": ([("main.sh", b"a"), ("main.sh", b"b")], "entry 'main.sh'"),
    "case collision": ([("main.sh", b"a"), ("MAIN.sh", b"b")], "entry 'MAIN.sh'"),
    "symlink": ([_symlink("main.sh", "/etc/passwd")], "entry 'main.sh'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_hostile_packages_are_refused_and_store_nothing(mf: Mayfly, project: str, tmp_path: Path, case: str) -> None:
    entries, fragment = BAD_ZIPS[case]
    path = tmp_path / "bad.zip"
    path.write_bytes(_zip_with(entries))  # type: ignore[arg-type]
    before = _stored(mf)
    with pytest.raises(InvalidArchive) as info:
        mf.codes.push(project, "bad", path, runtime="shell", options=CodeOptions())
    assert info.value.message.startswith("invalid code package: ")
    assert fragment in info.value.message
    assert "\n" not in info.value.message
    assert _stored(mf) == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a zip", "invalid code package: not a valid zip file"),
        (zip_bytes({"main.sh": "echo hi\n" * 100})[:-30], "invalid code package: not a valid zip file"),
        (zip_bytes({}), "invalid code package: package is empty"),
        (zip_bytes({"other.sh": "echo"}), "package has no entry point 'main.sh' (the command runs it)"),
    ],
    ids=["not a zip", "truncated", "empty", "no entry point"],
)
def test_corrupt_or_incomplete_packages(mf: Mayfly, project: str, tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(data)
    with pytest.raises(InvalidArchive, match=message.replace("(", "\\(").replace(")", "\\)")):
        mf.codes.push(project, "p", path, runtime="shell", options=CodeOptions())
    assert _stored(mf) == (0, 0, [])


def test_a_zip_bomb_is_refused(home: Path, tmp_path: Path, resolver: RuntimeResolver) -> None:
    mf = Mayfly(Home(home, Limits()), resolver)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("main.sh", "echo\n")
        zf.writestr("zeros.bin", b"\0" * (50 * 1024 * 1024))
    path = tmp_path / "bomb.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InvalidArchive, match=r"entry 'zeros.bin'.*200:1"):
        mf.codes.push(mf.project_id(), "bomb", path, runtime="shell", options=CodeOptions())
    assert _stored(mf) == (0, 0, [])


def test_an_upload_over_the_cap_is_refused_before_it_is_kept(home: Path, resolver: RuntimeResolver) -> None:
    mf = Mayfly(Home(home, Limits(max_upload_bytes=1 << 20)), resolver)
    big = io.BytesIO(os.urandom(8 << 20))
    with pytest.raises(UploadTooLarge, match="larger than the 1 MiB upload limit"):
        mf.codes.push(mf.project_id(), "big", big, runtime="shell", options=CodeOptions())
    assert big.tell() <= 2 << 20  # refused after the first blocks, not after reading it all
    assert _stored(mf) == (0, 0, [])


def test_a_directory_with_a_symlink_is_refused(mf: Mayfly, project: str, hello_dir: Path) -> None:
    (hello_dir / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidArchive, match=r"cannot package .*: path 'link'"):
        mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions())
    assert _stored(mf) == (0, 0, [])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"runtime": "cobol"}, RuntimeNotFound, "unknown runtime 'cobol'"),
        ({"options": CodeOptions(retries=11)}, InvalidInput, "retries must be between 0 and 10"),
        ({"options": CodeOptions(timeout=0)}, InvalidInput, "timeout must be between 1 and 86400 seconds"),
        ({"options": CodeOptions(target="mars")}, MayflyError, "unknown target 'mars'"),
        ({"options": CodeOptions(env={"MAYFLY_X": "1"})}, InvalidInput, "is reserved"),
        ({"options": CodeOptions(memory_mb=1)}, InvalidInput, "memory must be between 6 and 262144 MiB"),
        ({"name": "../up"}, InvalidInput, "invalid code name '../up'"),
    ],
)
def test_bad_options_store_nothing(
    mf: Mayfly, project: str, hello_dir: Path, kwargs: dict[str, object], error: type[MayflyError], message: str
) -> None:
    args: dict[str, object] = {"name": "hello", "runtime": "shell", "options": CodeOptions(), **kwargs}
    name = args.pop("name")
    with pytest.raises(error, match=message.replace("(", "\\(")):
        mf.codes.push(project, name, hello_dir, **args)  # type: ignore[arg-type]
    assert _stored(mf) == (0, 0, [])


def test_push_a_directory_then_revisions_and_download(mf: Mayfly, project: str, hello_dir: Path) -> None:
    code, rev1 = mf.codes.push(
        project, "hello", hello_dir, runtime="shell", options=CodeOptions(max_concurrency=3, env={"A": "1"})
    )
    assert (code.name, rev1.rev, rev1.kind, rev1.command, rev1.max_concurrency) == ("hello", 1, "zip", "sh main.sh", 3)
    assert rev1.image == "mayfly-test/busybox:latest"
    (hello_dir / "extra.txt").write_text("more")
    _, rev2 = mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(retries=2))
    # Unset options are inherited from revision 1.
    assert (rev2.rev, rev2.max_concurrency, rev2.env_dict, rev2.retries) == (2, 3, {"A": "1"}, 2)
    assert rev2.sha256 != rev1.sha256
    assert [r.rev for r in mf.codes.revisions(project, "hello")] == [2, 1]
    rev, stream = mf.codes.download(project, "hello", 1)
    with stream, zipfile.ZipFile(io.BytesIO(stream.read())) as zf:
        assert zf.namelist() == ["main.sh"]
    assert rev.rev == 1
    with pytest.raises(RevisionNotFound, match="code 'hello' has no revision 9"):
        mf.codes.download(project, "hello", 9)
    with pytest.raises(CodeNotFound):
        mf.codes.get(mf.project_id("other"), "hello")


def test_same_content_is_stored_once(mf: Mayfly, project: str, hello_dir: Path) -> None:
    mf.codes.push(project, "a", hello_dir, runtime="shell", options=CodeOptions())
    mf.codes.push(project, "b", hello_dir, runtime="shell", options=CodeOptions())
    assert len(_stored(mf)[2]) == 1


def test_max_concurrency_zero_means_no_limit(mf: Mayfly, project: str, hello_dir: Path) -> None:
    mf.codes.push(project, "h", hello_dir, runtime="shell", options=CodeOptions(max_concurrency=2))
    _, rev = mf.codes.push(project, "h", hello_dir, runtime="shell", options=CodeOptions(max_concurrency=0))
    assert rev.max_concurrency is None


def test_delete_cancels_queued_tasks_ends_schedules_and_frees_the_name(
    mf: Mayfly, project: str, hello_dir: Path
) -> None:
    from mayfly.core.schedules import ScheduleSpec
    from mayfly.core.tasks import TaskOptions

    mf.codes.push(project, "gone", hello_dir, runtime="shell", options=CodeOptions())
    done = mf.tasks.queue(project, "gone", "{}", TaskOptions())
    mf.tasks.cancel(project, done.id)  # a finished task: its history must survive the delete
    queued = mf.tasks.queue(project, "gone", "{}", TaskOptions(delay=3600))
    sched = mf.schedules.create(project, "gone", ScheduleSpec(every="1h"))

    assert mf.codes.delete(project, "gone") == 1

    assert "gone" not in [code.name for code, _ in mf.codes.list(project)]
    with pytest.raises(CodeNotFound):
        mf.codes.get(project, "gone")
    with pytest.raises(CodeNotFound):
        mf.tasks.queue(project, "gone", "{}", TaskOptions())
    with pytest.raises(CodeNotFound):
        mf.tasks.retry(project, done.id)
    assert mf.tasks.get(project, queued.id).status == "cancelled"
    assert mf.tasks.get(project, done.id).code_name == "gone"
    assert mf.schedules.get(project, sched.id).status == "cancelled"

    # The name is free again: a new code, starting at revision 1.
    code, rev = mf.codes.push(project, "gone", hello_dir, runtime="shell", options=CodeOptions())
    assert rev.rev == 1
    assert code.deleted_at is None


def test_delete_of_an_unknown_code_changes_nothing(mf: Mayfly, project: str) -> None:
    with pytest.raises(CodeNotFound):
        mf.codes.delete(project, "nope")

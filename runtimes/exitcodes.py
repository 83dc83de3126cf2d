"""Exit codes of the boot agent itself, mirrored from the docstring of ``boot/mayfly-boot``.

A task container that ends with one of these codes and a ``mayfly-boot:`` line on
stderr failed before (or, for RESULT_UPLOAD, after) the command ran. The command's
own exit codes are passed through unchanged, so a command may use these numbers
too; the stderr line tells them apart.
"""

from __future__ import annotations

from enum import IntEnum


class BootExit(IntEnum):
    """Why the boot agent stopped a task."""

    #: No command, or a malformed MAYFLY_* variable (sha256, non-http(s) URL).
    USAGE = 119
    #: result.json could not be uploaded or was over the cap (only when the command exited 0).
    RESULT_UPLOAD = 120
    #: Downloading the code, payload or config failed after retries, or it was over its cap.
    DOWNLOAD = 121
    #: The code package's sha256 did not match: nothing unpacked, nothing run.
    CHECKSUM = 122
    #: The safe unpacker rejected the code package (bad zip, symlink, ``../``, limits).
    ARCHIVE = 123
    #: A bug of the agent or a broken image.
    INTERNAL = 125
    #: /bin/sh could not be executed.
    NO_SHELL = 127


def describe(code: int) -> str | None:
    """A short explanation of a boot agent exit code, or None for any other code."""
    try:
        return {
            BootExit.USAGE: "bad boot agent invocation or MAYFLY_* variable",
            BootExit.RESULT_UPLOAD: "result.json upload failed",
            BootExit.DOWNLOAD: "download of the code, payload or config failed",
            BootExit.CHECKSUM: "code package sha256 mismatch",
            BootExit.ARCHIVE: "code package rejected by the safe unpacker",
            BootExit.INTERNAL: "internal error of the boot agent",
            BootExit.NO_SHELL: "/bin/sh could not be executed",
        }[BootExit(code)]
    except ValueError:
        return None

"""Adds Mayfly's layer to an image; runs INSIDE the image, as root, at build time.

The image builder copies this file, the boot agent template and the safe
unpacker to /usr/local/lib/mayfly and runs ``python3 -I mayfly_setup.py`` with the
image's own interpreter, so the same steps serve the offline Debian rootfs and any
``--base`` image:

- checks the interpreter (Python >= 3.10 with the modules the boot agent imports)
  and that /bin/sh exists;
- adds group and user ``mayfly`` (10001) unless that uid/gid exists, and makes
  /tmp (1777), /mayfly and /mayfly/task (owned by 10001);
- installs /usr/local/bin/mayfly-boot with a shebang naming this interpreter
  (``-I -S``: the task's PYTHONPATH and site-packages cannot change the agent);
- byte-compiles the agent's library and the modules it imports or, with
  ``--compile-stdlib``, the whole standard library (the root filesystem is read-only
  at run time, so Python could not cache them there).

Stays runnable by Python 3.7+ so an old base image gets a clear message.
"""

from __future__ import annotations

import importlib
import os
import sys

LIB_DIR = "/usr/local/lib/mayfly"
BOOT_TEMPLATE = LIB_DIR + "/mayfly-boot"
BOOT = "/usr/local/bin/mayfly-boot"
UID = GID = 10001
USER = "mayfly"
TASK_DIRS = ("/mayfly", "/mayfly/task")
#: What the boot agent and the safe unpacker import, checked here rather than at the first task.
BOOT_IMPORTS = (
    "contextlib",
    "hashlib",
    "http.client",
    "pathlib",
    "signal",
    "ssl",
    "tempfile",
    "time",
    "urllib.error",
    "urllib.request",
    "mayfly_archive",
)


def die(message: str) -> None:
    """Stop the build with one line the builder shows."""
    sys.stderr.write(f"mayfly-setup: {message}\n")
    sys.exit(1)


def check_interpreter() -> None:
    """Fail early on an interpreter or image the boot agent cannot run on."""
    if sys.version_info < (3, 10):  # noqa: UP036 - runs on the image's Python, not Mayfly's
        die(f"the image's python3 is {sys.version.split()[0]}; the boot agent needs Python >= 3.10")
    if not os.path.exists("/bin/sh"):
        die("the image has no /bin/sh; the boot agent runs the command with /bin/sh -c")
    sys.path.insert(0, LIB_DIR)
    for name in BOOT_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken C extension
            die(f"the image's python3 cannot import {name} ({exc}); the boot agent needs it")


def _ids(path: str, field: int) -> set[str]:
    """The names and numeric ids of an /etc/passwd-like file."""
    found: set[str] = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) > field:
                    found.update((parts[0], f"#{parts[field]}"))
    return found


def _append(path: str, line: str) -> None:
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if text and not text.endswith("\n"):
        text += "\n"
    with open(path, "w") as f:
        f.write(text + line + "\n")
    os.chmod(path, 0o644)


def ensure_user() -> None:
    """Root and the task user 10001 in /etc/passwd and /etc/group (created when missing)."""
    os.makedirs("/etc", exist_ok=True)
    groups = _ids("/etc/group", 2)
    if "root" not in groups and "#0" not in groups:
        _append("/etc/group", "root:x:0:")
    if f"#{GID}" not in groups:
        _append("/etc/group", f"{USER if USER not in groups else 'mayfly-task'}:x:{GID}:")
    users = _ids("/etc/passwd", 2)
    if "root" not in users and "#0" not in users:
        _append("/etc/passwd", "root:x:0:0:root:/root:/bin/sh")
    if f"#{UID}" not in users:
        name = USER if USER not in users else "mayfly-task"
        _append("/etc/passwd", f"{name}:x:{UID}:{GID}:Mayfly task:/mayfly/task:/bin/sh")


def ensure_dirs() -> None:
    """/tmp world-writable and sticky, the task directories owned by the task user."""
    os.makedirs("/tmp", exist_ok=True)
    os.chmod("/tmp", 0o1777)
    for path in TASK_DIRS:
        os.makedirs(path, exist_ok=True)
        os.chown(path, UID, GID)
        os.chmod(path, 0o755)


def install_boot() -> None:
    """Write the boot agent with a shebang that names this very interpreter."""
    with open(BOOT_TEMPLATE) as f:
        body = f.read().split("\n", 1)[1]
    os.makedirs(os.path.dirname(BOOT), exist_ok=True)
    with open(BOOT, "w") as f:
        f.write(f"#!{os.path.realpath(sys.executable)} -IS\n{body}")
    os.chmod(BOOT, 0o755)
    os.remove(BOOT_TEMPLATE)


def compile_python(stdlib: bool) -> None:
    """Byte-compile (hash-based, never re-checked) what the agent imports, or the whole stdlib.

    Without ``stdlib`` only the modules loaded by :func:`check_interpreter` (the
    agent's own imports) are compiled: enough for an image whose Python serves only
    the agent, and all a base image needs from us.
    """
    import compileall
    import importlib.util
    import py_compile
    import sysconfig

    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    # compileall's parallel mode needs concurrent.futures, which a minimal Python lacks.
    workers = 0 if importlib.util.find_spec("concurrent") else 1
    if not compileall.compile_dir(LIB_DIR, quiet=1, workers=workers, invalidation_mode=mode):
        die(f"byte-compiling {LIB_DIR} failed")
    if stdlib:
        # Best effort: the standard library ships a few deliberately invalid test files.
        compileall.compile_dir(sysconfig.get_paths()["stdlib"], quiet=2, workers=workers, invalidation_mode=mode)
        return
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py") and not path.startswith(LIB_DIR):
            compileall.compile_file(path, quiet=2, invalidation_mode=mode)


def main(argv: list[str]) -> None:
    """Run every step; ``--compile-stdlib`` also compiles the standard library."""
    os.umask(0o022)
    check_interpreter()
    ensure_user()
    ensure_dirs()
    install_boot()
    compile_python(stdlib="--compile-stdlib" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])

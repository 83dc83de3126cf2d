"""Secret values: validated, encrypted at rest with a key kept outside the store, opened only at launch.

A code revision or a task keeps its secrets as one JSON object, name → Fernet
token, in its ``secrets`` column: the names stay readable (the CLI, API and
dashboard show which are set), the values never are without the key. The task
message carries the same tokens, so a queue body holds no value in clear; the
runner opens them just before it hands them to the provider.

The key is ``MAYFLY_SECRET_KEY`` or the file ``$MAYFLY_HOME/keys/secret.key``,
created with mode 0600 on first use. Either may hold several keys, separated by
commas or newlines: the first encrypts, every one decrypts (key rotation, see
docs/secrets.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mayfly.core.config import SECRET_KEY_ENV
from mayfly.core.errors import InvalidInput, SecretKeyError

if TYPE_CHECKING:  # cryptography loads when a key is used: reading a task's secret names needs none
    from cryptography.fernet import MultiFernet

#: Secret names are file names in the container and shell-safe: the same rule as env names.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
#: Largest value of one secret (a certificate chain fits; a data set does not belong here).
MAX_VALUE_BYTES = 64 * 1024
#: Most secrets on one code revision or task.
MAX_SECRETS = 100
#: Where a task finds its secrets, one file per name.
SECRETS_DIR = "/mayfly/secrets"
#: The environment variable that holds the key; overrides the key file.
KEY_ENV = SECRET_KEY_ENV

#: The stored form: name → Fernet token (text).
Sealed = dict[str, str]


def validate_secrets(values: Mapping[str, bytes]) -> dict[str, bytes]:
    """Names are shell names outside ``MAYFLY_*``; values are bytes of at most 64 KiB."""
    if len(values) > MAX_SECRETS:
        raise InvalidInput(f"at most {MAX_SECRETS} secrets per code or task")
    out: dict[str, bytes] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidInput(f"invalid secret name {name!r}: use letters, digits and '_', not starting with a digit")
        if name.startswith("MAYFLY_"):
            raise InvalidInput(f"secret name {name!r} is reserved (MAYFLY_* is Mayfly's)")
        if not isinstance(value, bytes):
            raise InvalidInput(f"secret {name!r} must be a string")
        if len(value) > MAX_VALUE_BYTES:
            raise InvalidInput(f"secret {name!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}")
        out[name] = value
    return out


def parse_secret_pairs(pairs: list[str]) -> dict[str, bytes]:
    """``["K=V", ...]`` from ``--secret`` into name → bytes (the value is never echoed in an error)."""
    out: dict[str, bytes] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput("invalid --secret: expected NAME=VALUE (the argument is not repeated here)")
        out[name] = value.encode()
    return validate_secrets(out)


def parse_secret_files(pairs: list[str]) -> dict[str, bytes]:
    """``["K=PATH", ...]`` from ``--secret-file``: each file's bytes."""
    out: dict[str, bytes] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise InvalidInput(f"invalid --secret-file {pair!r}: expected NAME=PATH")
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_VALUE_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"cannot read --secret-file {name}: {path}: {exc.strerror}") from None
        out[name] = data
    return validate_secrets(out)


def names_of(sealed: str | None) -> list[str]:
    """The sorted names in a stored ``secrets`` column (NULL or '' means none)."""
    return sorted(load_sealed(sealed))


def load_sealed(sealed: str | None) -> Sealed:
    """A stored ``secrets`` column as name → token."""
    if not sealed:
        return {}
    value: Sealed = json.loads(sealed)
    return value


def dump_sealed(sealed: Mapping[str, str]) -> str | None:
    """The column value: None when there is no secret."""
    return json.dumps(dict(sorted(sealed.items())), separators=(",", ":")) if sealed else None


class SecretBox:
    """Seals and opens secret values with the home's key (loaded on first use)."""

    def __init__(
        self, key_file: Path, env: Mapping[str, str] | None = None, *, may_create: Callable[[], bool] | None = None
    ) -> None:
        """``may_create()`` says whether a missing key file may be made (not when the store holds secrets)."""
        self.key_file = key_file
        self._may_create = may_create
        self._env = os.environ if env is None else env
        self._fernet: MultiFernet | None = None
        #: The key file's identity when it was read: a rotated file is read again (a long-running server).
        self._seen: tuple[int, int, int] | None = None

    def _keys(self, *, create: bool) -> list[bytes]:
        text = self._env.get(KEY_ENV, "").strip()
        where = KEY_ENV
        if not text:
            where = str(self.key_file)
            try:
                text = self.key_file.read_text().strip()
            except FileNotFoundError:
                if not create or (self._may_create is not None and not self._may_create()):
                    raise SecretKeyError(
                        f"no secret key: {self.key_file} is missing and {KEY_ENV} is not set "
                        "(restore the key from your backup; see docs/secrets.md)"
                    ) from None
                text = _create_key_file(self.key_file)
            except OSError as exc:
                raise SecretKeyError(f"cannot read the secret key {self.key_file}: {exc.strerror}") from None
        from cryptography.fernet import Fernet

        keys = [k.strip().encode() for k in re.split(r"[,\s]+", text) if k.strip()]
        for k in keys:
            try:
                Fernet(k)
            except ValueError:
                raise SecretKeyError(
                    f"the secret key in {where} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        if not keys:
            raise SecretKeyError(f"the secret key in {where} is empty")
        return keys

    def _multi(self, *, create: bool) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        seen = None if self.from_env else _identity(self.key_file)
        if self._fernet is None or seen != self._seen:
            self._fernet = MultiFernet([Fernet(k) for k in self._keys(create=create)])
            self._seen = seen if seen is not None or self.from_env else _identity(self.key_file)
        return self._fernet

    @property
    def from_env(self) -> bool:
        """True when ``MAYFLY_SECRET_KEY`` supplies the key (the key file is not used)."""
        return bool(self._env.get(KEY_ENV, "").strip())

    def seal(self, values: Mapping[str, bytes]) -> Sealed:
        """Encrypt each value with the primary key (creating the key file on first use)."""
        f = self._multi(create=True)
        return {name: f.encrypt(value).decode() for name, value in values.items()}

    def open(self, sealed: Mapping[str, str]) -> dict[str, bytes]:
        """Decrypt each token; a token no key opens raises :class:`SecretKeyError` (never the value)."""
        if not sealed:
            return {}
        from cryptography.fernet import InvalidToken

        f = self._multi(create=False)
        out: dict[str, bytes] = {}
        for name, token in sealed.items():
            try:
                out[name] = f.decrypt(token.encode())
            except InvalidToken:
                raise SecretKeyError(
                    f"secret {name!r} cannot be decrypted with this home's key (a different or lost "
                    f"{KEY_ENV} / keys/secret.key; see docs/secrets.md)"
                ) from None
        return out

    def rotate(self, sealed: Mapping[str, str]) -> Sealed:
        """Re-encrypt each token with the primary key (it must open with one of the keys)."""
        from cryptography.fernet import InvalidToken

        f = self._multi(create=False)
        out: Sealed = {}
        for name, token in sealed.items():
            try:
                out[name] = f.rotate(token.encode()).decode()
            except InvalidToken:
                raise SecretKeyError(f"secret {name!r} cannot be decrypted with any of the keys") from None
        return out


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def add_primary_key(path: Path) -> None:
    """Put a new key first in the key file (mode 0600), keeping the old ones for decryption."""
    from cryptography.fernet import Fernet

    old = path.read_text().strip() if path.exists() else ""
    _write_private(path, Fernet.generate_key() + (b"\n" + old.encode() if old else b"") + b"\n", replace=True)


def drop_old_keys(path: Path) -> int:
    """Keep only the first (primary) key in the key file; returns how many keys were dropped."""
    keys = [k for k in re.split(r"[,\s]+", path.read_text()) if k]
    _write_private(path, keys[0].encode() + b"\n", replace=True)
    return len(keys) - 1


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if replace:
        os.replace(tmp, path)
        return
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)  # a racing process keeps the winner's key
    tmp.unlink()


def _create_key_file(path: Path) -> str:
    """Write a new key to ``path`` with mode 0600 (first writer wins) and return the file's key."""
    from cryptography.fernet import Fernet

    _write_private(path, Fernet.generate_key() + b"\n", replace=False)
    return path.read_text()

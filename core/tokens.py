"""API tokens: 256 random bits, shown once, stored as SHA-256, bound to one project.

Format: ``mfy_`` + 43 base62 characters + a 6-character checksum, so a leaked
token is recognisable by secret scanners without a database lookup. Expiry and
revocation are checked on every request. A slow hash buys nothing for
high-entropy secrets, so SHA-256 it is; comparison is by hash lookup, which
does not leak timing about the secret.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from mayfly.core import validate
from mayfly.core.errors import ExitCode, InvalidInput, MayflyError, NotFound, StoreUnavailable
from mayfly.core.ids import new_id
from mayfly.core.records import iso
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

PREFIX = "mfy_"
#: Every API request runs it: built once (building it cost more than running it).
_BY_HASH = select(s.tokens).where(s.tokens.c.hash == bindparam("hash"))
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Unauthorized(MayflyError):
    """No token, a malformed, unknown, expired or revoked one."""

    code = "unauthorized"
    http_status = 401
    #: The CLI's "credentials missing" exit code: a bad token must not look like a failed task (1).
    exit_code = ExitCode.UNAVAILABLE


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_secret() -> str:
    """A fresh token secret."""
    body = _base62(secrets.randbits(256), 43)
    return PREFIX + body + _base62(zlib.crc32(body.encode()), 6)


def well_formed(secret: str) -> bool:
    """Prefix, length and checksum are right (no lookup needed)."""
    if not secret.startswith(PREFIX) or len(secret) != len(PREFIX) + 49:
        return False
    body, check = secret[len(PREFIX) : -6], secret[-6:]
    return _base62(zlib.crc32(body.encode()), 6) == check


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    """A token's record (never the secret)."""

    id: str
    project_id: str
    name: str | None
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


def _token(row: Any) -> Token:
    return Token(**{k: row[k] for k in Token.__dataclass_fields__})


class TokenService:
    """Create, list, revoke and check tokens."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, project_id: str, *, name: str | None = None, expires_in: float | None = None) -> tuple[Token, str]:
        """A new token; returns its record and the secret (shown once)."""
        if expires_in is not None and expires_in <= 0:
            raise InvalidInput("expiry must be in the future")
        if name is not None:
            validate.text(name, "token name", 100)
        secret = new_secret()
        ts = now()
        token_id = new_id()
        with self.store.write() as conn:
            conn.execute(
                insert(s.tokens).values(
                    id=token_id,
                    project_id=project_id,
                    name=name,
                    hash=token_hash(secret),
                    prefix=secret[:10],
                    created_at=ts,
                    expires_at=ts + expires_in if expires_in else None,
                )
            )
            row = conn.execute(select(s.tokens).where(s.tokens.c.id == token_id)).mappings().one()
        return _token(row), secret

    def list(self, project_id: str) -> builtins.list[Token]:
        with self.store.read() as conn:
            rows = (
                conn.execute(select(s.tokens).where(s.tokens.c.project_id == project_id).order_by(s.tokens.c.id))
                .mappings()
                .all()
            )
        return [_token(r) for r in rows]

    def revoke(self, project_id: str, token_id: str) -> Token:
        """Revoke a token of the project; it fails on its next request. Revoking again keeps the first time."""
        with self.store.write() as conn:
            row = conn.execute(select(s.tokens).where(s.tokens.c.id == token_id)).mappings().first()
            if row is None or row["project_id"] != project_id:
                raise NotFound(f"unknown token {token_id!r}")
            if row["revoked_at"] is None:
                conn.execute(update(s.tokens).where(s.tokens.c.id == token_id).values(revoked_at=now()))
            return _token(conn.execute(select(s.tokens).where(s.tokens.c.id == token_id)).mappings().one())

    def authenticate(self, secret: str | None) -> Token:
        """The token behind a secret, if it is valid now; raises Unauthorized otherwise."""
        if not secret:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
        if not well_formed(secret):
            raise Unauthorized("malformed token")
        with self.store.read() as conn:
            row = conn.execute(_BY_HASH, {"hash": token_hash(secret)}).mappings().first()
        if row is None:
            raise Unauthorized("unknown token")
        token = _token(row)
        ts = now()
        if token.revoked_at is not None:
            raise Unauthorized("token revoked")
        if token.expires_at is not None and token.expires_at <= ts:
            raise Unauthorized("token expired")
        if token.last_used_at is None or ts - token.last_used_at > 60:
            # At most one write a minute per token, and a best effort: a store that cannot be written
            # now (locked, disk full) must not turn away requests that only read.
            with contextlib.suppress(StoreUnavailable), self.store.write() as conn:
                conn.execute(update(s.tokens).where(s.tokens.c.id == token.id).values(last_used_at=ts))
        return token

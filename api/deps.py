"""Request dependencies: the Mayfly of this server and the calling project."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mayfly.core.app import Mayfly
from mayfly.core.tokens import Token


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token and the one project it is bound to."""

    token: Token

    @property
    def project_id(self) -> str:
        return self.token.project_id


def get_mayfly(request: Request) -> Mayfly:
    """The Mayfly instance the app was created with."""
    mf: Mayfly = request.app.state.mayfly
    return mf


def bearer_secret(request: Request) -> str | None:
    """The token of ``Authorization: Bearer …`` (or IronWorker's ``OAuth …``), else ``?oauth=``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return request.query_params.get("oauth") or None

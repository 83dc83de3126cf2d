"""Errors only the HTTP API raises, with stable codes like every :class:`MayflyError`.

This module imports nothing from FastAPI, so the CLI's remote client can map the
API's error codes back to these classes without loading the server.
"""

from __future__ import annotations

from mayfly.core.errors import InvalidInput, Unavailable


class RateLimited(Unavailable):
    """The project sent more requests than its rate allows; ``details["retry_after"]`` says when to retry."""

    code = "rate_limited"
    http_status = 429


class BodyTooLarge(InvalidInput):
    """A request body is larger than the route accepts; refused before it is read whole."""

    code = "body_too_large"
    http_status = 413


__all__ = ["BodyTooLarge", "RateLimited"]

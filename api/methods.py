"""The methods a path serves, over every route that matches it (for the ``Allow`` header of a 405)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method of every route whose path matches the request's, sorted.

    Starlette answers a wrong method with the methods of the *first* route whose path
    matched; a path such as ``/v1/codes`` is served by two routes (``GET`` and ``POST``).
    """
    found: set[str] = set()
    for route in leaf_routes(routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            found.update(getattr(route, "methods", None) or ())
    return sorted(found)


def leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[Any]:
    """Every endpoint route, each with its full path (FastAPI >= 0.165 keeps included routers nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI flattens included routers into app.routes
        yield from routes
        return
    yield from iter_route_contexts(list(routes))

"""Typer options built from core's option table (core/options.py), so a command repeats none of them.

A command declares one parameter ``options: OptionValues`` where the options go; :func:`with_options`
replaces it, in the signature Typer reads, with one option per row of the table for that kind (same
flags and help as the table says) plus the command's ``extra`` parameters (options whose shape is the
CLI's own, like ``--env KEY=VALUE`` or ``--secret-file``). The command then receives every one of them
in that one dict, keyed by core's field name (``memory_mb``, ``default_priority``) for table rows and by
parameter name for extras.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, cast

import typer

from mayfly.core import options

#: What a decorated command receives: option name -> value given (or its default).
OptionValues = dict[str, Any]

F = TypeVar("F", bound=Callable[..., Any])

_SLOT = "options"


def extra(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    """A command-line option of the CLI's own shape (``annotation`` is an ``Annotated[..., typer.Option]``)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def parameters(kind: options.Kind) -> list[inspect.Parameter]:
    """One Typer option per core option of ``kind``, as signature parameters."""
    found = []
    for opt in options.of(kind):
        value_type: Any = opt.type if opt.default is not None else opt.type | None
        info = typer.Option(*opt.cli_flags, help=opt.help[kind])
        annotation = cast(Any, Annotated)[value_type, info]
        found.append(
            inspect.Parameter(opt.cli_name, inspect.Parameter.KEYWORD_ONLY, default=opt.default, annotation=annotation)
        )
    return found


def with_options(kind: options.Kind, extras: Sequence[inspect.Parameter] = ()) -> Callable[[F], F]:
    """Give the command the options of ``kind`` (and ``extras``) in place of its ``options`` parameter."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        params = list(signature.parameters.values())
        slot = [p.name for p in params].index(_SLOT)
        added = [*parameters(kind), *extras]
        core_name = {opt.cli_name: opt.name for opt in options.of(kind)}
        own = {p.name for p in added}
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if i > slot else p for i, p in enumerate(params)]
        new = signature.replace(parameters=[*rest[:slot], *added, *rest[slot + 1 :]])

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {core_name.get(name, name): kwargs.pop(name) for name in list(kwargs) if name in own}
            return func(*args, options=values, **kwargs)

        command.__signature__ = new  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
        return cast(F, command)

    return decorate

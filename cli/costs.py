"""Cost commands: ``mayfly cost``, ``mayfly target price`` and ``mayfly project budget`` (issue 18 parts 2, 3).

``task show`` and ``task list`` print costs with :func:`show_attempts`; ``run
--dry-run`` prints an estimate with :func:`show_estimate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from mayfly.cli.context import open_app, open_local
from mayfly.cli.options import JsonOpt, ProjectOpt
from mayfly.cli.output import fields, print_json, say, table
from mayfly.core.budgets import parse_amount
from mayfly.core.costs import Attempt, Estimate, parse_since
from mayfly.core.errors import InvalidInput
from mayfly.core.pricing import CURRENCY, Price, usd
from mayfly.core.records import iso
from mayfly.core.store import now


def show_attempts(attempts: Sequence[Attempt]) -> None:
    """The attempts of a task: where each ran, for how long it was billed, what it cost."""
    if not attempts:
        return
    fields([("cost", usd(sum(a.cost for a in attempts)))])
    table(
        ("ATTEMPT", "TARGET", "PROVIDER", "REGION", "OUTCOME", "STARTED", "BILLED S", "COST"),
        (_attempt_row(a) for a in attempts),
    )


def _attempt_row(a: Attempt) -> tuple[object, ...]:
    started = iso(a.started_at)
    return (a.attempt, a.target, a.provider, a.region, a.outcome, started, f"{a.billed_seconds:g}", usd(a.cost))


def show_price(target: str, price: Price) -> None:
    fields(
        [
            ("target", target),
            ("provider", price.provider),
            ("region", price.region),
            ("vcpu", f"{price.vcpu_second * 3600:.6g} {CURRENCY}/vCPU-hour ({price.vcpu_second:.6g}/s)"),
            ("memory", f"{price.gb_second * 3600:.6g} {CURRENCY}/GB-hour ({price.gb_second:.6g}/s)"),
            ("minimum", f"{price.minimum_seconds:g} s per attempt"),
            ("from", "this target's own price (target price --set)" if price.origin == "target" else "shipped table"),
            ("source", price.source),
            ("as of", price.as_of),
        ]
    )


def show_estimate(est: Estimate) -> None:
    fields(
        [
            ("estimate", f"{usd(est.cost)} ({est.seconds:g} billed s)"),
            ("at most", f"{usd(est.worst)} (billed for the whole timeout)"),
            ("price", f"{est.price.provider} {est.price.region or ''} ({est.price.origin}: {est.price.source})"),
        ]
    )


def cost(
    project: ProjectOpt = None,
    since: Annotated[str, typer.Option("--since", help="Since when: 7d, 24h, 30m, 2w or a date (UTC).")] = "7d",
    as_json: JsonOpt = False,
) -> None:
    """Sum the cost of a project's attempts by code and target."""
    mf = open_app()
    pid = mf.project_id(project)
    start = parse_since(since, now())
    rows = mf.costs.summary(pid, start)
    total = sum(r["cost"] for r in rows)
    if as_json:
        print_json({"since": iso(start), "currency": CURRENCY, "total": round(total, 12), "rows": rows})
        return
    table(
        ("CODE", "TARGET", "ATTEMPTS", "BILLED S", "COST"),
        [(r["code"], r["target"], r["attempts"], f"{r['billed_seconds']:g}", usd(r["cost"])) for r in rows],
    )
    say(f"total since {iso(start)}: {usd(total)}")


def _pairs(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set needs KEY=VALUE, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def price(
    name: Annotated[str, typer.Argument(help="Target name.")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override: vcpu_hour, gb_hour, vcpu_second, gb_second or minimum_seconds=VALUE (USD)."
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Drop the target's override (the shipped table).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the price table in use on a target and where it came from; --set / --clear change its override."""
    if set_ and clear:
        raise InvalidInput("give --set or --clear, not both")
    if set_ or clear:
        local = open_local("target price --set")
        local.targets.get(name)
        found = local.costs.clear(name) if clear else local.costs.set(name, _pairs(set_ or []))
    else:
        mf = open_app()
        mf.targets.get(name)
        found = mf.costs.get(name)
    if as_json:
        print_json({"target": name, **found.to_json()})
    else:
        show_price(name, found)


def budget(
    name: Annotated[str, typer.Argument(help="Project name.")],
    daily: Annotated[str | None, typer.Option("--daily", help="Daily limit (UTC day), e.g. 20usd.")] = None,
    monthly: Annotated[str | None, typer.Option("--monthly", help="Monthly limit (UTC month), e.g. 500usd.")] = None,
    alert_url: Annotated[
        str | None, typer.Option("--alert-url", help="POST a signed alert here at 80 % and 100 % ('' to stop).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every limit of the project.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show or set a project's daily and monthly budget; queueing past it is refused."""
    mf = open_local("project budget")
    project = mf.projects.by_id(mf.project_id(name))  # created on first use, like --project everywhere
    if clear and (daily or monthly):
        raise InvalidInput("give --clear alone, or limits without it")
    values: dict[str, Any] = {}
    if daily is not None:
        values["daily"] = parse_amount(daily)
    if monthly is not None:
        values["monthly"] = parse_amount(monthly)
    if alert_url:
        from mayfly.core.webhook_urls import validate_url

        validate_url(alert_url)
    if alert_url is not None:
        values["alert_url"] = alert_url
    if values or clear:
        mf.budgets.set(project.id, clear=clear, **values)
    status = mf.budgets.status(project.id)
    if as_json:
        print_json({"project": project.name, **status})
        return
    limits = status["budget"] or {}
    fields(
        [
            ("project", project.name),
            ("daily", f"{limits['daily']:.2f} {CURRENCY}" if limits.get("daily") is not None else "no limit"),
            ("monthly", f"{limits['monthly']:.2f} {CURRENCY}" if limits.get("monthly") is not None else "no limit"),
            ("alert url", limits.get("alert_url")),
            ("spent today", usd(status["daily"]["spent"])),
            ("spent this month", usd(status["monthly"]["spent"])),
            ("unfinished tasks (estimate)", usd(status["pending"])),
        ]
    )


def register_price(app: typer.Typer) -> None:
    """Add ``price`` to ``mayfly target``."""
    app.command("price")(price)


def register_budget(app: typer.Typer) -> None:
    """Add ``budget`` to ``mayfly project``."""
    app.command("budget")(budget)

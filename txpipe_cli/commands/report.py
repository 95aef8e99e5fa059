"""report: the analysts' view, one state, several, or all of them, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from lambdas.core.reporting import STATE_CODES
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError
from txpipe_cli.output import console, handle_errors, print_json
from txpipe_cli.targets import get_target

FORMATS = ("table", "json", "csv")
RANKING = "top pizza types rank by pizzas sold, then gross sales, then name"
PER_CAPITA_UNIT = 100_000  # tables show gross sales per 100,000 residents (JSON keeps dollars per person, exact)
PER_CAPITA_NOTE = "per capita shown per 100,000 residents (JSON and CSV: dollars per person)"


def _per_100k(per_capita: float) -> str:
    return f"${per_capita * PER_CAPITA_UNIT:,.2f}"


@handle_errors
def report(
    state: Annotated[list[str] | None, typer.Option(
        "--state", "-s", help="USPS state code, any case (repeat for several: --state TX --state ca).")] = None,
    all_states: Annotated[bool, typer.Option("--all", help="Every state (50 and DC), by gross sales.")] = False,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """The analysts' view: per state, the top 3 pizza types, pizzas sold, gross sales, gross sales per
    capita and unique customers.

    Reads the materialized views (refreshed daily and by `txpipe refresh-views`); every report ends with
    when they were refreshed and how many orders are not in them yet (CSV: on stderr). Top pizza types
    rank by pizzas sold, then gross sales, then name. Tables show gross sales per 100,000 residents; JSON
    and CSV carry the exact dollars per person. JSON is always {"ranking", "freshness", "states": [...]}.
    """
    fmt = "json" if as_json else output_format.strip().lower()
    if fmt not in FORMATS:
        raise OptionError(f"--format {output_format!r} is not one of {', '.join(FORMATS)}")
    codes = [code.strip().upper() for code in state or []]
    if bool(codes) == all_states:
        raise OptionError("give --state CODE (repeatable) or --all")
    unknown = [code for code in codes if code not in STATE_CODES]
    if unknown:
        raise OptionError(f"--state {unknown[0]!r} is not a USPS state code (the 50 states and DC, e.g. TX)")
    event = {"all": True} if all_states else {"states": list(dict.fromkeys(codes))}
    result = get_target(target, stage=stage).invoke("ops", {"action": "report", **event})
    states, fresh = result["states"], result["freshness"]
    if fmt == "json":
        print_json({"ranking": RANKING, **result})
        return
    if fmt == "csv":
        _write_csv(states if all_states else [_flat(r) for r in states])
        typer.echo(freshness_line(fresh), err=True)  # stdout stays the CSV alone
        return
    if all_states:
        _render_all(states)
    else:
        for row in states:
            _render_state(row)
        console.print(f"[dim]{RANKING}; {PER_CAPITA_NOTE}[/]", highlight=False)
    console.print(freshness_line(fresh), highlight=False)


def freshness_line(fresh: dict[str, Any], now: datetime | None = None) -> str:
    """When the views were refreshed, and what they do not hold yet, with the command that brings it in."""
    if fresh["views_refreshed_at"]:
        at = datetime.fromisoformat(fresh["views_refreshed_at"])
        age = max(0, int(((now or datetime.now(UTC)) - at).total_seconds()))
        when = f"views refreshed {at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({_age(age)} ago)"
    else:
        when = "views not refreshed since they were created"
    waiting, syncing = fresh["awaiting_refresh"], fresh["awaiting_sync"]
    if syncing is None:
        return f"{when}; {waiting:,} orders in the warehouse not in them yet; OLTP not reached: " \
               f"{fresh.get('awaiting_sync_error')}"
    if not waiting + syncing:
        return f"{when}; every stored order is in them"
    hint = "txpipe sync-now && txpipe refresh-views" if syncing else "txpipe refresh-views"
    return (f"{when}; {waiting + syncing:,} orders not in them yet ({waiting:,} in the warehouse, {syncing:,} "
            f"awaiting the sync) (run: {hint})")


def _age(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """One state's report as one CSV row: the top pizza types as numbered columns."""
    top = list(enumerate(row["top_pizzas"], start=1))
    return {**{k: v for k, v in row.items() if k != "top_pizzas"},
            **{f"top{n}_pizza_type": p["pizza_type"] for n, p in top},
            **{f"top{n}_pizzas": p["total_pizzas"] for n, p in top}}


def _render_state(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['state']}[/] {result['state_name']} (#{result['rank']} of 51 by gross sales): "
                  f"{result['total_pizzas']:,} pizzas, gross sales "
                  f"${result['gross_sales']:,.2f} ({_per_100k(result['gross_sales_per_capita'])} per 100,000 "
                  f"residents), {result['unique_customers']:,} unique customers", highlight=False)
    table = Table("#", "pizza type", "pizzas", "gross sales", title=f"top pizza types in {result['state']}")
    for rank, row in enumerate(result["top_pizzas"], start=1):
        table.add_row(str(rank), row["pizza_type"], f"{row['total_pizzas']:,}", f"${row['gross_sales']:,.2f}")
    console.print(table)


def _render_all(states: list[dict[str, Any]]) -> None:
    table = Table("rank", "state", "pizzas", "gross sales", "per 100k residents", "unique customers",
                  title="every state, by gross sales")
    for row in states:
        table.add_row(str(row["rank"]), f"{row['state']} {row['state_name']}", f"{row['total_pizzas']:,}",
                      f"${row['gross_sales']:,.2f}", _per_100k(row["gross_sales_per_capita"]),
                      f"{row['unique_customers']:,}")
    console.print(table)
    console.print(f"[dim]ranked by gross sales, then pizzas sold; {PER_CAPITA_NOTE}[/]", highlight=False)


def _write_csv(rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    # Numbers as decimals, never 8.3e-05: spreadsheets and scripts read them as they are.
    writer.writerows({k: format(Decimal(repr(v)), "f") if isinstance(v, float) else v for k, v in row.items()}
                     for row in rows)
    typer.echo(buffer.getvalue(), nl=False)

"""report: the analysts' view, one state, several, or all of them, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from lambdas.core.contract import RANKING, Freshness, StateReport
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError
from txpipe_cli.humanize import duration
from txpipe_cli.ops_client import OpsClient
from txpipe_cli.output import console, handle_errors, print_json
from txpipe_cli.states import StateNotFound, resolve_codes
from txpipe_cli.targets import get_target

FORMATS = ("table", "json", "csv")
PER_CAPITA_UNIT = 100_000  # tables show gross sales per 100,000 residents (JSON and CSV: dollars per person, exact)
PER_CAPITA_NOTE = "per capita shown per 100,000 residents (JSON and CSV: dollars per person)"


def _per_100k(per_capita: str | float) -> str:
    """Dollars per person (the exact decimal string, or a float from an older ops function) per 100,000."""
    return f"${Decimal(str(per_capita)) * PER_CAPITA_UNIT:,.2f}"


@handle_errors
def report(
    state: Annotated[list[str] | None, typer.Option(
        "--state", "-s", help="A state by USPS code, name or the start of either, any case (TX, Texas, tex); "
                              "repeat for several: --state TX --state calif.")] = None,
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
    and CSV carry the exact dollars per person as a decimal string. JSON is always {"ranking", "freshness",
    "states": [...]}, each state in one shape; CSV is one row per state, with the same columns for --state
    and --all.
    """
    fmt = "json" if as_json else output_format.strip().lower()
    if fmt not in FORMATS:
        raise OptionError(f"--format {output_format!r} is not one of {', '.join(FORMATS)}")
    if state and all_states:
        raise OptionError("give --state or --all, not both")
    if not state and not all_states:
        raise OptionError("give --state (a name or code, repeatable) or --all")
    try:
        codes = resolve_codes(state or [])
    except StateNotFound as exc:
        raise OptionError(f"--state {exc}") from None
    ops = OpsClient(get_target(target, stage=stage))
    result = ops.report(all=True) if all_states else ops.report(states=codes)
    if fmt == "json":
        print_json({"ranking": RANKING, **result.to_dict()})
        return
    fresh = freshness_line(result.freshness) if result.freshness else ""  # asked for: always there
    if fmt == "csv":
        _write_csv(result.states)
        typer.echo(fresh, err=True)  # stdout stays the CSV alone
        return
    if all_states:
        _render_all(result.states)
    else:
        for row in result.states:
            _render_state(row)
        console.print(f"[dim]{RANKING}; {PER_CAPITA_NOTE}[/]", highlight=False)
    console.print(fresh, highlight=False)


def freshness_line(fresh: Freshness, now: datetime | None = None) -> str:
    """When the views were refreshed, and what they do not hold yet, with the command that brings it in."""
    if fresh.views_refreshed_at:
        at = datetime.fromisoformat(fresh.views_refreshed_at)
        age = max(0, int(((now or datetime.now(UTC)) - at).total_seconds()))
        when = f"views refreshed {at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({duration(age)} ago)"
    else:
        when = "views not refreshed since they were created"
    waiting, syncing = fresh.awaiting_refresh, fresh.awaiting_sync
    if syncing is None:
        return f"{when}; {waiting:,} orders in the warehouse not in them yet; OLTP not reached: " \
               f"{fresh.awaiting_sync_error}"
    if not waiting + syncing:
        return f"{when}; every stored order is in them"
    hint = "txpipe sync-now && txpipe refresh-views" if syncing else "txpipe refresh-views"
    return (f"{when}; {waiting + syncing:,} orders not in them yet ({waiting:,} in the warehouse, {syncing:,} "
            f"awaiting the sync) (run: {hint})")


TOP = 3
# One CSV shape for --state and --all: a row per state, its figures as the report's type has them (a column added
# there is a column here), then its top pizza types as numbered columns (empty where a state has sold fewer types).
CSV_COLUMNS = (*StateReport.scalar_keys(), *(f"top{n}_pizza_type" for n in range(1, TOP + 1)),
               *(f"top{n}_pizzas" for n in range(1, TOP + 1)))


def csv_row(row: StateReport) -> dict[str, Any]:
    """One state's report as one CSV row."""
    top = list(enumerate(row.top_pizzas[:TOP], start=1))
    flat = {**{k: v for k, v in row.to_dict().items() if k != "top_pizzas"},
            **{f"top{n}_pizza_type": p.pizza_type for n, p in top},
            **{f"top{n}_pizzas": p.total_pizzas for n, p in top}}
    return {column: _csv_value(flat.get(column, "")) for column in CSV_COLUMNS}


def _csv_value(value: Any) -> Any:
    # Numbers as decimals, never 8.3e-05: spreadsheets and scripts read them as they are.
    return format(Decimal(repr(value)), "f") if isinstance(value, float) else value


def _render_state(result: StateReport) -> None:
    console.print(f"[bold]{result.state}[/] {result.state_name} (#{result.rank} of 51 by gross sales): "
                  f"{result.total_pizzas:,} pizzas, gross sales "
                  f"${result.gross_sales:,.2f} ({_per_100k(result.gross_sales_per_capita)} per 100,000 "
                  f"residents), {result.unique_customers:,} unique customers", highlight=False)
    table = Table("#", "pizza type", "pizzas", "gross sales", title=f"top pizza types in {result.state}")
    for rank, row in enumerate(result.top_pizzas, start=1):
        table.add_row(str(rank), row.pizza_type, f"{row.total_pizzas:,}", f"${row.gross_sales:,.2f}")
    console.print(table)


def all_table(states: list[StateReport]) -> Table:
    """Every state in 72 columns at today's figures, so every figure shows in full at 80 (a pipe's width too):
    each state a row of stacked cells (rank and code over the name, pizzas over customers, gross sales over
    per 100k, the top 3 types one a line), figures never wrapped."""
    table = Table(title="every state, by gross sales", show_lines=True)
    table.add_column("#  code\nstate")
    table.add_column("pizzas\ncustomers", justify="right", no_wrap=True)
    table.add_column("gross sales\nper 100k", justify="right", no_wrap=True)
    table.add_column("top 3 pizza types\n(pizzas sold)")
    tops = [p for row in states for p in row.top_pizzas[:TOP]]
    names = max((len(p.pizza_type) for p in tops), default=0)
    counts = max((len(f"{p.total_pizzas:,}") for p in tops), default=0)
    for row in states:
        top = Table.grid(padding=(0, 1))
        top.add_column(min_width=names)  # the counts line up from state to state
        top.add_column(justify="right", no_wrap=True, min_width=counts)
        for pizza in row.top_pizzas[:TOP]:
            top.add_row(pizza.pizza_type, f"{pizza.total_pizzas:,}")
        table.add_row(f"{row.rank:<2} {row.state}\n{row.state_name}",
                      f"{row.total_pizzas:,}\n{row.unique_customers:,}",
                      f"${row.gross_sales:,.2f}\n{_per_100k(row.gross_sales_per_capita)}",
                      top if top.row_count else "" if row.total_pizzas else "[dim]no sales yet[/]")
    return table


def _render_all(states: list[StateReport]) -> None:
    console.print(all_table(states))
    console.print("[dim]ranked by gross sales, then pizzas sold; customers: unique customers; per 100k: gross sales "
                  f"per 100,000 residents (JSON and CSV: dollars per person); {RANKING}[/]", highlight=False)


def _write_csv(rows: list[StateReport]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(row) for row in rows)
    typer.echo(buffer.getvalue(), nl=False)

"""report: the analysts' view, one state, several, or all of them, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import ExitStatus, TxpipeError
from txpipe_cli.output import console, handle_errors, print_json
from txpipe_cli.targets import get_target

FORMATS = ("table", "json", "csv")
RANKING = "top pizza types rank by pizzas sold, then gross sales, then name"
PER_CAPITA_UNIT = 100_000  # tables show gross sales per 100,000 residents (JSON keeps dollars per person, exact)


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

    Reads the materialized views (refreshed daily and by `txpipe refresh-views`). Top pizza types rank by
    pizzas sold, then gross sales, then name. Tables show gross sales per 100,000 residents; JSON and CSV
    carry the exact dollars per person.
    """
    fmt = "json" if as_json else output_format.strip().lower()
    if fmt not in FORMATS:
        raise TxpipeError(f"--format {output_format!r} is not one of {', '.join(FORMATS)}", code=ExitStatus.USAGE)
    codes = [code.strip().upper() for code in state or []]
    if bool(codes) == all_states:
        raise TxpipeError("give --state CODE (repeatable) or --all", code=ExitStatus.USAGE)
    chosen = get_target(target, stage=stage)
    if all_states:
        _render_all(chosen.invoke("ops", {"action": "report_all"})["states"], fmt)
        return
    results = [chosen.invoke("ops", {"action": "report", "state": code}) for code in dict.fromkeys(codes)]
    if fmt == "json":
        print_json(results[0] if len(results) == 1 else results)
    elif fmt == "csv":
        _write_csv([{**{k: v for k, v in r.items() if k != "top_pizzas"},
                     **{f"top{n}_pizza_type": p["pizza_type"] for n, p in enumerate(r["top_pizzas"], start=1)},
                     **{f"top{n}_pizzas": p["total_pizzas"] for n, p in enumerate(r["top_pizzas"], start=1)}}
                    for r in results])
    else:
        for result in results:
            _render_state(result)
        console.print(f"[dim]{RANKING}; per capita shown per 100,000 residents[/]", highlight=False)


def _render_state(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['state']}[/]: {result['total_pizzas']:,} pizzas, gross sales "
                  f"${result['gross_sales']:,.2f} ({_per_100k(result['gross_sales_per_capita'])} per 100,000 "
                  f"residents), {result['unique_customers']:,} unique customers", highlight=False)
    table = Table("#", "pizza type", "pizzas", "gross sales", title=f"top pizza types in {result['state']}")
    for rank, row in enumerate(result["top_pizzas"], start=1):
        table.add_row(str(rank), row["pizza_type"], f"{row['total_pizzas']:,}", f"${row['gross_sales']:,.2f}")
    console.print(table)


def _render_all(states: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print_json(states)
        return
    if fmt == "csv":
        _write_csv(states)
        return
    table = Table("rank", "state", "pizzas", "gross sales", "per 100k residents", "unique customers",
                  title="every state, by gross sales")
    for row in states:
        table.add_row(str(row["rank"]), f"{row['state']} {row['state_name']}", f"{row['total_pizzas']:,}",
                      f"${row['gross_sales']:,.2f}", _per_100k(row["gross_sales_per_capita"]),
                      f"{row['unique_customers']:,}")
    console.print(table)


def _write_csv(rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    # Numbers as decimals, never 8.3e-05: spreadsheets and scripts read them as they are.
    writer.writerows({k: format(Decimal(repr(v)), "f") if isinstance(v, float) else v for k, v in row.items()}
                     for row in rows)
    typer.echo(buffer.getvalue(), nl=False)

"""`txpipe report` (txpipe_cli/commands/report.py) over a stand-in ops function: every figure in full at 80
columns (a rich Console of width 80, and a pipe), the top 3 of every state in table, JSON and CSV, one CSV
shape for --state and --all, exact per capita, and states by name, code or the start of one."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lambdas.core.contract import StateReport
from lambdas.core.schema import state_populations
from txpipe_cli.app import app
from txpipe_cli.commands import report
from txpipe_cli.commands.report import CSV_COLUMNS, all_table

runner = CliRunner()
TYPES = ["meat lover", "pepperoni", "supreme", "cheese", "veggie"]
FRESH = {"views_refreshed_at": "2026-12-02T09:30:00+00:00", "awaiting_refresh": 0, "awaiting_sync": 0,
         "last_sync_at": None}


def state_rows() -> list[dict[str, Any]]:
    """The 51 states as the ops function answers --all: figures at the widest a big year gives (California:
    $1,739,963.12 from 123,456 pizzas), per capita the warehouse's exact decimal; Wyoming sold nothing."""
    rows = []
    for n, (code, name, population) in enumerate(sorted(state_populations(), key=lambda s: -s[2])):
        gross = Decimal("1739963.12") - 30_000 * n if code != "WY" else Decimal(0)
        pizzas = 123_456 - 2_000 * n if code != "WY" else 0
        top = [{"pizza_type": TYPES[(n + i) % 5], "total_pizzas": 30_123 - 500 * n - 1_000 * i,
                "gross_sales": float(400_000 - 7_000 * n - 10_000 * i)} for i in range(3)] if code != "WY" else []
        rows.append({"state": code, "state_name": name, "population": population, "total_pizzas": pizzas,
                     "gross_sales": float(gross), "gross_sales_per_capita": format(gross / population, "f"),
                     "unique_customers": 12_345 - 100 * n if code != "WY" else 0, "top_pizzas": top})
    rows.sort(key=lambda r: -r["gross_sales"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


STATES = state_rows()
BY_CODE = {row["state"]: row for row in STATES}


class StubTarget:
    """The ops function's report action, answered from STATES; the events it got, kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        assert (function, event["action"]) == ("ops", "report")
        self.events.append(event)
        states = STATES if event.get("all") else [BY_CODE[code] for code in event["states"]]
        return {"freshness": FRESH, "states": states}


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> StubTarget:
    stub = StubTarget()
    monkeypatch.setattr(report, "get_target", lambda name, stage: stub)
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: rich's 80 columns
    return stub


def run(*args: str, code: int = 0) -> Any:
    outcome = runner.invoke(app, ["report", *args])
    assert outcome.exit_code == code, outcome.output
    return outcome


def figures(row: dict[str, Any]) -> list[str]:
    """Every figure of a state as the table must show it, whole."""
    per_100k = Decimal(row["gross_sales_per_capita"]) * 100_000
    return [row["state"], row["state_name"], f"{row['total_pizzas']:,}", f"{row['unique_customers']:,}",
            f"${row['gross_sales']:,.2f}", f"${per_100k:,.2f}",
            *(f"{p['pizza_type']} {p['total_pizzas']:,}" for p in row["top_pizzas"])]


def assert_every_figure_whole(text: str) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in text and "..." not in text
    # A cell's lines, read across the row: a figure cut or wrapped would not be found whole in any cell.
    cells = {" ".join(cell.split()) for line in lines for cell in re.split(r"[│┃]", line)}
    for row in STATES:
        missing = [f for f in figures(row) if not any(f == c or c.startswith(f + " ") or c.endswith(" " + f)
                                                      or f" {f} " in f" {c} " for c in cells)]
        assert missing == [], (row["state"], missing)
        assert f"{row['rank']} {row['state']}" in cells or f"{row['rank']:>2} {row['state']}" in {
            c.strip() for c in cells}
    assert "no sales yet" in text  # Wyoming


def test_all_at_80_columns_on_a_rich_console_shows_every_figure_whole() -> None:
    for terminal in (True, False):
        console = Console(width=80, record=True, force_terminal=terminal, color_system=None)
        console.print(all_table([StateReport.from_dict(row) for row in STATES]))
        assert_every_figure_whole(console.export_text())


def test_all_in_a_pipe_shows_every_figure_and_the_top_three(target: StubTarget) -> None:
    out = run("--all").stdout
    assert_every_figure_whole(out)
    assert "every state, by gross sales" in out and "per 100,000 residents" in " ".join(out.split())
    assert "views refreshed 2026-12-02 09:30:00 UTC" in out
    assert target.events == [{"action": "report", "all": True}]
    print("\n" + "\n".join(out.splitlines()[:13] + out.splitlines()[-12:]))


def test_the_csv_has_one_shape_for_state_and_all(target: StubTarget) -> None:
    one = list(csv.DictReader(io.StringIO(run("--state", "TX", "--format", "csv").stdout)))
    every = list(csv.DictReader(io.StringIO(run("--all", "--format", "csv").stdout)))
    header = run("--all", "-f", "csv").stdout.splitlines()[0]
    assert header == run("-s", "wyo", "-f", "csv").stdout.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert "top1_pizza_type" in header and header.endswith("top3_pizzas")
    assert len(every) == 51 and [r["state"] for r in every] == [r["state"] for r in STATES]
    assert one == [r for r in every if r["state"] == "TX"]
    for row, state in zip(every, STATES, strict=True):
        assert row["gross_sales_per_capita"] == state["gross_sales_per_capita"]  # as the warehouse computed it
        assert [row[f"top{n}_pizza_type"] for n in (1, 2, 3)] == (
            [p["pizza_type"] for p in state["top_pizzas"]] or ["", "", ""])
        assert [row[f"top{n}_pizzas"] for n in (1, 2, 3)] == (
            [str(p["total_pizzas"]) for p in state["top_pizzas"]] or ["", "", ""])
    assert "e-" not in "".join(r["gross_sales_per_capita"] + r["gross_sales"] for r in every)


def test_json_carries_the_top_three_and_the_exact_per_capita_of_every_state(target: StubTarget) -> None:
    every = json.loads(run("--all", "--json").stdout)
    assert every["states"] == STATES and all(isinstance(s["gross_sales_per_capita"], str) for s in every["states"])
    assert json.loads(run("-s", "Texas", "-f", "json").stdout)["states"] == [BY_CODE["TX"]]


@pytest.mark.parametrize(("given", "codes"), [
    (["Texas"], ["TX"]), (["tex"], ["TX"]), (["TX"], ["TX"]), (["tx", "calif", "Texas"], ["TX", "CA"]),
    (["new y", "dist"], ["NY", "DC"]),
])
def test_states_by_name_code_or_their_start(target: StubTarget, given: list[str], codes: list[str]) -> None:
    run(*(arg for text in given for arg in ("--state", text)), "--json")
    assert target.events == [{"action": "report", "states": codes}]


@pytest.mark.parametrize(("args", "line"), [
    (["--state", "new"], "error: --state new matches New Hampshire, New Jersey, New Mexico, New York "
                         "(give more of the name, or the code)"),
    (["--state", "ZZ"], "error: --state ZZ is not a US state (give a name, a USPS code or the start of one: "
                        "Texas, TX, tex)"),
    (["--state", "TX", "--state", "k"], "error: --state k matches Kansas, Kentucky (give more of the name, or "
                                        "the code)"),
    (["--all", "--state", "TX"], "error: give --state or --all, not both"),
    (["--state", "TX", "--all"], "error: give --state or --all, not both"),
    ([], "error: give --state (a name or code, repeatable) or --all"),
])
def test_refusals_are_one_line_and_exit_2(target: StubTarget, args: list[str], line: str) -> None:
    outcome = runner.invoke(app, ["report", *args], env={"COLUMNS": "200"})
    assert outcome.exit_code == 2, outcome.output
    assert outcome.output.strip().splitlines() == [line]
    assert target.events == []


def test_one_state_shows_its_figures_whole_at_80_columns(target: StubTarget) -> None:
    out = run("--state", "calif").stdout
    flat = " ".join(out.split())
    ca = BY_CODE["CA"]
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out
    for figure in figures(ca)[2:6]:
        assert figure in flat, figure
    assert all(p["pizza_type"] in out and f"{p['total_pizzas']:,}" in out for p in ca["top_pizzas"])

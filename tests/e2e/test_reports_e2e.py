"""`txpipe report` as analysts and scripts use it: one state, several, all of them; table, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.local_cli import Cli, local_home, wait_for


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-reports") as cli:
        cli.json("seed", "--generate", "400")
        orders = tmp_path_factory.mktemp("orders") / "orders.json"
        orders.write_text(json.dumps([{"customer_id": 1 + i % 400, "type": ["cheese", "veggie"][i % 2],
                                       "qty": 1 + i % 3, "retail_price": 11.5} for i in range(600)]))
        cli.json("send", str(orders))
        cli.json("sync-now")
        cli.json("refresh-views")
        yield cli


def test_all_states_in_one_table_sorted_by_gross_sales(cli: Cli) -> None:
    states = cli.json("report", "--all")["states"]
    assert len(states) == 51 and [s["rank"] for s in states] == list(range(1, 52))
    assert [s["gross_sales"] for s in states] == sorted((s["gross_sales"] for s in states), reverse=True)
    assert sum(s["total_pizzas"] for s in states) == sum(1 + i % 3 for i in range(600))
    assert "every state, by gross sales" in cli("report", "--all").stdout


def test_csv_has_a_header_and_exact_decimals(cli: Cli) -> None:
    rows = list(csv.DictReader(io.StringIO(cli("report", "--all", "--format", "csv").stdout)))
    assert len(rows) == 51 and "e-" not in "".join(r["gross_sales_per_capita"] for r in rows)
    top = rows[0]
    states = cli.json("report", "--all")["states"]
    assert float(top["gross_sales"]) == states[0]["gross_sales"]
    assert [r["gross_sales_per_capita"] for r in rows] == [s["gross_sales_per_capita"] for s in states]  # exact


def test_one_shape_for_one_state_and_all(cli: Cli) -> None:
    """--all carries every state's top 3 as --state does (JSON and CSV); the CSV has one header for both."""
    states = cli.json("report", "--all")["states"]
    for state in states:
        if state["state"] in ("TX", "CA", "WY"):
            assert [state] == cli.json("report", "--state", state["state"])["states"]
    assert any(len(s["top_pizzas"]) == 2 for s in states)  # cheese and veggie, the two types sent
    every = cli("report", "--all", "-f", "csv").stdout
    one = cli("report", "--state", "Texas", "-f", "csv").stdout
    assert every.splitlines()[0] == one.splitlines()[0] and "top1_pizza_type" in one.splitlines()[0]
    assert one.splitlines()[1] in every.splitlines()[1:]


def test_all_shows_every_figure_whole_in_a_pipe(cli: Cli) -> None:
    """`txpipe report --all` with its stdout a pipe (rich: 80 columns): no line past 80, no ellipsis, and every
    state's gross sales, per 100k, pizzas, customers and top 3 are there whole."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", "from txpipe_cli.app import main; main()", "report", "--all"],  # noqa: S603
                         env={**env, "TXPIPE_HOME": str(cli.home), "TXPIPE_TARGET": "local"}, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in out
    cells = " | ".join(" ".join(cell.split()) for line in lines for cell in line.split("│"))
    for s in cli.json("report", "--all")["states"]:
        per_100k = Decimal(s["gross_sales_per_capita"]) * 100_000
        for figure in (f"{s['rank']}", s["state"], s["state_name"], f"{s['total_pizzas']:,}",
                       f"${s['gross_sales']:,.2f}", f"${per_100k:,.2f}", f"{s['unique_customers']:,}",
                       *(f"{p['pizza_type']} {p['total_pizzas']:,}" for p in s["top_pizzas"])):
            assert f" {figure} " in f" {cells} ", (s["state"], figure)
    print("\n" + "\n".join(lines[:10]))


@pytest.mark.parametrize(("given", "code"), [("Texas", "TX"), ("tex", "TX"), ("new y", "NY"), ("dist", "DC")])
def test_a_state_by_its_name_or_the_start_of_one(cli: Cli, given: str, code: str) -> None:
    assert [s["state"] for s in cli.json("report", "--state", given)["states"]] == [code]


@pytest.mark.parametrize(("args", "line"), [
    (["--state", "new"], "error: --state new matches New Hampshire, New Jersey, New Mexico, New York"),
    (["--state", "ZZ"], "error: --state ZZ is not a US state"),
    (["--all", "--state", "TX"], "error: give --state or --all, not both"),
])
def test_what_names_no_one_state_is_refused_in_one_line(cli: Cli, args: list[str], line: str) -> None:
    output = cli("report", *args, code=2).output
    assert len(output.strip().splitlines()) == 1 and output.startswith(line), output


def test_several_states_in_any_case(cli: Cli) -> None:
    both = cli.json("report", "--state", "tx", "--state", "CA")["states"]
    assert [r["state"] for r in both] == ["TX", "CA"]
    table = cli("report", "-s", "ca").stdout
    assert "per 100,000 residents" in table and "rank by pizzas sold" in table


@pytest.mark.parametrize("args", [["report"], ["report", "--all", "--state", "TX"], ["report", "--all", "-f", "xml"]])
def test_report_options_are_checked_first(cli: Cli, args: list[str]) -> None:
    assert cli(*args, code=2).exit_code == 2


def test_sla_report_refuses_a_non_positive_sla(cli: Cli, tmp_path: Path) -> None:
    assert "must be a positive number" in cli("sla-report", "--sla", "-1", code=2).output


def test_logs_by_function(cli: Cli) -> None:
    """The runtime's log, read back by function: the sync invocations above are there, under sync, each with
    what it did (tests/e2e/test_logs_e2e.py reads every function's line)."""
    lines = [json.loads(line) for line in cli("logs", "sync", "--since", "1h", "--json").stdout.splitlines()]
    assert lines and {line["service"] for line in lines} == {"sync"}
    assert any(line["message"] == "moved 600 orders" and line["moved"] == 600 for line in lines)
    assert "refreshed 2 views" in cli("logs", "refresh", "--since", "1h").stdout
    assert "no function 'nope'" in cli("logs", "nope", code=2).output


def test_settings_stay_and_a_flag_changes_only_its_own(cli: Cli, tmp_path: Path) -> None:
    """deploy --sync-every 2m, then a bare deploy: still 2m; --sla changes the SLA alone and says so;
    status shows the settings in force."""
    changed = cli.json("deploy", "--sync-every", "2m")
    assert changed["settings_changed"]["sync_every_seconds"] == {"from": 300.0, "to": 120.0}
    bare = cli.json("deploy")
    assert bare["settings"]["sync_every_seconds"] == 120.0 and bare["settings_changed"] == {}
    assert bare["changed"] is False
    sla = cli.json("deploy", "--sla", "600")
    assert set(sla["settings_changed"]) == {"sla_seconds"} and sla["settings"]["sync_every_seconds"] == 120.0
    assert "setting sla_seconds: 600.0 -> 700.0" in cli("deploy", "--sla", "700").stdout
    status = cli("status").stdout
    words = " ".join(status.split())  # the settings line folds at the terminal's width
    assert "sync_every_seconds=120 (2 min)" in words and "sla_seconds=700 (11 min 40 s)" in words, words


def test_the_endpoint_printed_is_what_send_url_takes(cli: Cli, tmp_path: Path) -> None:
    url = cli.json("endpoint")["url"]
    orders = tmp_path / "one.json"
    orders.write_text(json.dumps({"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 9.5}))
    assert cli.json("send", str(orders), "--url", url)["accepted"] == 1


def test_every_report_says_how_fresh_the_views_are(cli: Cli, tmp_path: Path) -> None:
    """Refreshed: nothing missing. 25 more orders sent: the report counts them as not in the views, in
    table, JSON and CSV alike, and names the commands that bring them in; those run, nothing is missing."""
    cli.json("sync-now")
    cli.json("refresh-views")
    fresh = cli.json("report", "--all")["freshness"]
    assert (fresh["awaiting_refresh"], fresh["awaiting_sync"]) == (0, 0) and fresh["views_refreshed_at"]
    assert "every stored order is in them" in cli("report", "-s", "TX").stdout

    stored = cli.sql("oltp", "SELECT count(*) FROM orders")[0][0]
    orders = tmp_path / "more.json"
    orders.write_text(json.dumps([{"customer_id": 1 + i, "type": "cheese", "qty": 1, "retail_price": 10}
                                  for i in range(25)]))
    assert cli.json("send", str(orders))["accepted"] == 25
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders")[0][0] == stored + 25, what="the 25 orders stored")
    fresh = cli.json("report", "-s", "TX")["freshness"]
    assert fresh["awaiting_refresh"] + fresh["awaiting_sync"] == 25  # a scheduled sync may have moved some
    assert "25 orders not in them yet" in cli("report", "--all").stdout
    assert "25 orders not in them yet" in cli("report", "--all", "-f", "csv").stderr
    cli.json("sync-now")
    fresh = cli.json("report", "-s", "TX")["freshness"]
    assert (fresh["awaiting_refresh"], fresh["awaiting_sync"]) == (25, 0)
    assert "(run: txpipe refresh-views)" in cli("report", "-s", "TX").stdout
    cli.json("refresh-views")
    assert cli.json("report", "-s", "TX")["freshness"]["awaiting_refresh"] == 0

"""`txpipe report` as analysts and scripts use it: one state, several, all of them; table, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_target import Cli, local_home, wait_for


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
    assert float(top["gross_sales"]) == cli.json("report", "--all")["states"][0]["gross_sales"]


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
    """The runtime's log, read back by function: the sync invocations above are there, under sync."""
    lines = [json.loads(line) for line in cli("logs", "sync", "--since", "1h", "--json").stdout.splitlines()]
    assert lines and {line["function"] for line in lines} == {"sync"}
    assert any(line["message"].startswith("invoked in") for line in lines)
    assert "invoked in" in cli("logs", "refresh", "--since", "1h").stdout
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
    assert "sync_every_seconds=120.0" in status and "sla_seconds=700.0" in status


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

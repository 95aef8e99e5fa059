"""`txpipe seed --history` on the local target: historical orders into OLTP and the outbox, then the sync moves them
and the reports count them. Tests run in file order on one deployment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.local_cli import Cli, local_home
from txpipe_cli.app import app
from txpipe_cli.commands import orders as orders_commands
from txpipe_cli.errors import TxpipeError

runner = CliRunner()
ORDERS = 5000


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-history") as cli:
        yield cli


def test_history_needs_customers_and_one_source(cli: Cli) -> None:
    assert "no customers: run txpipe seed --generate N first" in cli("seed", "--history", "10", code=1).output
    assert "exactly one of --customers FILE, --generate N or --history N" in cli(
        "seed", "--generate", "5", "--history", "5", code=2).output
    assert cli("seed", "--history", "0", code=2).exit_code == 2


def test_history_loads_orders_and_a_rerun_loads_none(cli: Cli) -> None:
    cli.json("seed", "--generate", "300")
    first = cli.json("seed", "--history", str(ORDERS), "--days", "30")
    assert (first["orders"], first["inserted"], first["already_present"], first["days"]) == (ORDERS, ORDERS, 0, 30)
    assert cli.sql("oltp", "SELECT count(*) FROM outbox")[0][0] == ORDERS
    again = cli.json("seed", "--history", str(ORDERS), "--days", "30")
    assert (again["inserted"], again["already_present"]) == (0, ORDERS)
    assert cli.sql("oltp", "SELECT count(*) FROM outbox")[0][0] == ORDERS
    text = cli("seed", "--history", "10", "--days", "30").stdout  # the same seed's first 10: already there
    assert "nothing changed: the 10 orders over 30 days were already there (checked in " in text


def test_the_sync_moves_them_and_the_report_counts_them(cli: Cli) -> None:
    before = cli.sql("warehouse", "SELECT count(*) FROM orders_fact")[0][0]  # the scheduled sync may have run
    cli.json("sync-now")
    assert cli.sql("warehouse", "SELECT count(*) FROM orders_fact")[0][0] == ORDERS
    assert before <= ORDERS and cli.sql("oltp", "SELECT count(*) FROM outbox")[0][0] == 0
    cli.json("refresh-views")
    pizzas = cli.sql("oltp", "SELECT sum(qty) FROM orders")[0][0]
    states = cli.json("report", "--all")["states"]
    assert sum(s["total_pizzas"] for s in states) == pizzas


class FailsFromTheThirdChunk:
    """A target whose ops function loads two chunks, then fails as a database outage would."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        self.events.append(payload)
        if payload["start"] >= 2 * orders_commands.HISTORY_CHUNK:
            raise TxpipeError("the ops function failed: connection refused")
        return {"inserted": payload["count"], "already_present": 0}


def test_a_load_that_stops_midway_says_the_loaded_orders_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    target = FailsFromTheThirdChunk()
    monkeypatch.setattr(orders_commands, "get_target", lambda *args, **kwargs: target)
    result = runner.invoke(app, ["seed", "--history", "1000000", "--random-seed", "3"])
    assert result.exit_code == 1, result.output
    line = " ".join(result.output.split())
    assert "loading orders stopped after 400000 of 1000000: the ops function failed" in line
    assert "the orders loaded so far stay; run the same command again" in line
    assert len({(e["end"], e["seed"], e["days"]) for e in target.events}) == 1  # one load, whatever the chunk
    assert sorted(e["start"] for e in target.events)[:3] == [0, 200_000, 400_000]

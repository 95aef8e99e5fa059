"""`txpipe rejected` knows what was fixed (local target, through the CLI): an unknown customer's order is
rejected, the customer seeded, the exported file re-sent; the stored order is resolved, leaves the pending list
and `status`'s count, and `rejected purge --resolved` deletes it, while an order whose customer is still unknown
stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.local_cli import Cli, local_home, post, wait_for
from txpipe_cli.app import app

runner = CliRunner()
FIXED = {"customer_id": 777_777, "type": "cheese", "qty": 2, "retail_price": 11.5, "order_id": "rej-fixed"}
STILL = {"customer_id": 888_888, "type": "veggie", "qty": 1, "retail_price": 9.25, "order_id": "rej-still"}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-rejected") as cli:
        cli.json("seed", "--generate", "20")
        yield cli


def test_a_fixed_order_is_resolved_and_purged_and_an_unfixed_one_stays(cli: Cli, tmp_path: Path) -> None:
    assert post(cli.state, json.dumps([FIXED, STILL]).encode())[0] == 202
    wait_for(lambda: cli.json("rejected", "list")["count"] == 2, what="two rejected orders")
    assert cli.json("status")["pipeline"]["rejected_orders"] == 2

    exported = tmp_path / "rejected.ndjson"
    assert cli.json("rejected", "export", str(exported))["written"] == 2
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,state\n777777,WY\n")
    cli.json("seed", "--customers", str(customers))
    assert cli.json("send", str(exported))["accepted"] == 2  # the API takes both; the store keeps the fixed one
    wait_for(lambda: cli.json("rejected", "list")["resolved"] == 1, what="the re-sent order stored")
    assert cli.sql("oltp", "SELECT customer_id, qty FROM orders WHERE order_id = 'rej-fixed'") == [(777_777, 2)]

    # rej-still re-sent unchanged is the same rejection, not a second row (a new message, a new accepted_at:
    # the store matches it by order_id, kind and content). It stays pending; rej-fixed's row is resolved.
    pending = cli.json("rejected", "list")
    assert (pending["count"], pending["resolved"], pending["reasons"]) == (1, 1, {"unknown customer_id": 1})
    assert [(row["order_id"], row["resolved"]) for row in pending["rows"]] == [("rej-still", False)]
    everything = cli.json("rejected", "list", "--all")["rows"]
    assert [(row["order_id"], row["resolved"]) for row in everything] == [("rej-fixed", True), ("rej-still", False)]
    assert cli.json("status")["pipeline"]["rejected_orders"] == 1
    text = cli("rejected", "list").stdout
    assert "1 rejected order pending" in text and "rej-still" in text and "rej-fixed" not in text
    assert "1 resolved (stored since; --all lists them): txpipe rejected purge --resolved deletes them." in text
    left = tmp_path / "left.ndjson"
    assert cli.json("rejected", "export", str(left))["written"] == 1  # what is left to fix: rej-still only
    assert {json.loads(line)["order_id"] for line in left.read_text().splitlines()} == {"rej-still"}

    assert "give --resolved" in cli("rejected", "purge", "--yes", code=2).output
    env = {"TXPIPE_HOME": str(cli.home)}
    declined = runner.invoke(app, ["rejected", "purge", "--resolved"], input="n\n", env=env)
    assert declined.exit_code == 1 and "Delete the 1 resolved rejected order for good?" in declined.output
    assert cli.sql("oltp", "SELECT count(*) FROM rejected_orders") == [(2,)]
    assert cli.json("rejected", "purge", "--resolved", "--yes") == {"purged": 1}
    assert cli.sql("oltp", "SELECT order_id FROM rejected_orders") == [("rej-still",)]
    after = cli.json("rejected", "list", "--all")
    assert (after["count"], after["resolved"], {row["order_id"] for row in after["rows"]}) == (1, 0, {"rej-still"})
    assert "purged 0 resolved rejected orders" in cli("rejected", "purge", "--resolved", "--yes").stdout

"""`seed --replace` does what its help says (local target, through the CLI): a customer moved to another state
keeps the orders already in the warehouse in the old state (where they were placed); the orders not yet synced
when the move is loaded, and every later one, are reported in the new state. The reports group by
orders_fact.state, which the sync writes when it loads an order."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_cli import Cli, local_home, post, wait_for


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A deployment whose scheduled sync never runs during the test: only sync-now moves orders."""
    with local_home(tmp_path_factory, "e2e-seed-replace", deploy=False) as cli:
        cli.json("deploy", "--sla", "7200", "--sync-every", "1h")
        yield cli


def order(n: int, customer_id: int, qty: int, price: float, pizza: str = "cheese") -> dict[str, object]:
    return {"order_id": f"move-{n}", "customer_id": customer_id, "type": pizza, "qty": qty, "retail_price": price}


def stored(cli: Cli, count: int) -> None:
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id LIKE 'move-%%'")[0][0] == count,
             what=f"{count} orders stored")


def test_history_stays_where_it_was_placed_and_new_orders_go_to_the_new_state(cli: Cli, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,state\n1,VT\n2,VT\n3,WY\n")
    assert cli.json("seed", "--customers", str(customers))["customers"] == 3
    # Customer 1 in VT: three orders of 2 cheese at 10.00, synced. Customer 2, also VT: one veggie at 12.00.
    first = [order(i, 1, 2, 10.0) for i in range(3)] + [order(3, 2, 1, 12.0, "veggie")]
    assert post(cli.state, json.dumps(first).encode())[0] == 202
    stored(cli, 4)
    assert cli.json("sync-now")["pending"] == 0
    # One more of customer 1's, stored but not synced when the move is loaded: 4 cheese at 10.00.
    assert post(cli.state, json.dumps(order(4, 1, 4, 10.0)).encode())[0] == 202
    stored(cli, 5)

    moved = tmp_path / "moved.csv"
    moved.write_text("customer_id,state\n1,WY\n")
    assert "would move to another state" in cli("seed", "--customers", str(moved), code=1).output
    assert cli.json("seed", "--customers", str(moved), "--replace") == {"customers": 1, "new": 0, "updated": 1,
                                                                        "moved": 1}
    # After the move: one supreme at 20.00.
    assert post(cli.state, json.dumps(order(5, 1, 1, 20.0, "supreme")).encode())[0] == 202
    stored(cli, 6)
    cli.json("sync-now")
    cli.json("refresh-views")

    assert cli.sql("warehouse", "SELECT state, count(*) FROM orders_fact WHERE customer_id = 1 GROUP BY state "
                                "ORDER BY state") == [("VT", 3), ("WY", 2)]
    vt, wy = cli.json("report", "--state", "VT", "--state", "WY")["states"]
    assert (vt["total_pizzas"], vt["gross_sales"], vt["unique_customers"]) == (7, 72.0, 2)
    assert (wy["total_pizzas"], wy["gross_sales"], wy["unique_customers"]) == (5, 60.0, 1)
    assert [(t["pizza_type"], t["total_pizzas"]) for t in vt["top_pizzas"]] == [("cheese", 6), ("veggie", 1)]
    assert [(t["pizza_type"], t["total_pizzas"]) for t in wy["top_pizzas"]] == [("cheese", 4), ("supreme", 1)]


def test_the_help_and_the_output_say_so(cli: Cli, tmp_path: Path) -> None:
    """seed --help says where a moved customer's orders are reported, and so does a load that moves one."""
    help_text = " ".join(re.sub("[│╭╮╰╯─]", " ", cli("seed", "--help").stdout).split())  # rich's panel, unwrapped
    assert "Their orders already in the warehouse stay reported in the old state" in help_text
    assert "past orders move with them" not in help_text
    back = tmp_path / "back.csv"
    back.write_text("customer_id,state\n1,VT\n")
    out = " ".join(cli("seed", "--customers", str(back), "--replace").stdout.split())
    assert ("1 moved to another state: their orders already in the warehouse stay reported in the old state; "
            "orders not yet synced and all later ones go to the new one") in out

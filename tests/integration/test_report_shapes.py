"""One report shape for one state and for all of them (issue 16): `report --all` carries every state's top 3
pizza types, ranked as `report --state` ranks them (ties too), and per capita is the warehouse's exact decimal,
as a string, on real PostgreSQL through the ops function."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lambdas import ops
from lambdas.core.reporting import all_states_report, refresh_views, state_report
from lambdas.core.schema import state_populations
from tests.integration.helpers import order, query, seed_customers, store_directly, sync_once

POPULATION = {code: population for code, _, population in state_populations()}
CUSTOMERS = [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"], [4, "NY", "D"], [5, "VT", "E"]]
ORDERS = [  # TX: five types, a tie on pizzas and gross (pepperoni, veggie: name decides), one left out of its top 3
    ("tx-1", 1, "cheese", 3, "10.00"), ("tx-2", 1, "pepperoni", 3, "12.00"), ("tx-3", 2, "veggie", 3, "12.00"),
    ("tx-4", 2, "supreme", 2, "9.00"), ("tx-5", 2, "meat lover", 4, "5.00"),
    ("ca-1", 3, "cheese", 2, "10.50"), ("ca-2", 3, "veggie", 2, "11.00"),  # same pizzas: gross decides
    ("ny-1", 4, "veggie", 1, "11.00"), ("vt-1", 5, "supreme", 7, "13.37"),
]


@pytest.fixture
def warehouse(handler_env):
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, [order(oid, c, p, q, price) for oid, c, p, q, price in ORDERS])
    assert sync_once(handler_env).pending == 0
    conn = handler_env.connect("warehouse")
    refresh_views(conn)
    yield conn
    conn.close()


def test_every_state_of_all_is_its_own_state_report(warehouse) -> None:
    every = all_states_report(warehouse)
    assert len(every) == 51 and [s["rank"] for s in every] == list(range(1, 52))
    assert every == [state_report(warehouse, s["state"]) for s in every]
    by_code = {s["state"]: s for s in every}
    assert [(p["pizza_type"], p["total_pizzas"]) for p in by_code["TX"]["top_pizzas"]] == [
        ("meat lover", 4), ("pepperoni", 3), ("veggie", 3)]
    assert [p["pizza_type"] for p in by_code["CA"]["top_pizzas"]] == ["veggie", "cheese"]
    assert by_code["WY"]["top_pizzas"] == [] and by_code["WY"]["gross_sales_per_capita"] == "0"


def test_per_capita_is_the_warehouse_decimal_as_a_string(warehouse) -> None:
    exact = dict(query_rows(warehouse, "SELECT state, gross_sales_per_capita FROM state_sales"))
    for state in all_states_report(warehouse):
        if state["state"] in exact:
            text = state["gross_sales_per_capita"]
            assert isinstance(text, str) and "E" not in text.upper() and Decimal(text) == exact[state["state"]]
            gross = Decimal(str(state["gross_sales"]))
            assert abs(Decimal(text) - gross / POPULATION[state["state"]]) < Decimal("1e-18")
    assert Decimal(next(s for s in all_states_report(warehouse) if s["state"] == "VT")[
        "gross_sales_per_capita"]) > Decimal("0.00014")  # 93.59 / 643,077: far past a float's 4 figures


def test_the_ops_function_answers_all_in_the_shape_of_one(handler_env, warehouse) -> None:
    every = ops.handler({"action": "report", "all": True}, None)
    some = ops.handler({"action": "report", "states": ["VT", "TX", "WY"]}, None)
    by_code = {s["state"]: s for s in every["states"]}
    assert some["states"] == [by_code["VT"], by_code["TX"], by_code["WY"]]
    assert set(every) == set(some) == {"freshness", "states"}
    assert query(handler_env, "warehouse", "SELECT count(*) FROM sales_by_state")[0][0] == 9


def query_rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.commit()
    return rows

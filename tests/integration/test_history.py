"""Historical orders (lambdas.core.history, `seed --history`): generated, loaded into OLTP and its outbox, synced."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lambdas import ops
from lambdas.core import history
from lambdas.core.orders import PIZZA_TYPES, QueuedOrder
from lambdas.core.sync import run_sync
from tests.integration.helpers import counts, query, scalar, seed_customers, sync_once

END = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = [[i, ["TX", "CA", "NY", "WA"][i % 4], None] for i in range(1, 51)]
ORDER_COLUMNS = "order_id, customer_id, pizza_type, qty, retail_price, accepted_at, stored_at"


@pytest.fixture
def oltp(clean) -> Any:
    seed_customers(clean, CUSTOMERS)
    conn = clean.connect("oltp")
    yield conn
    conn.close()


def load(conn: Any, start: int, count: int, *, seed: int = 7, total: int = 5000, days: int = 30,
         end: datetime = END) -> dict[str, int]:
    return history.load_history_chunk(conn, seed=seed, start=start, count=count, total=total, days=days, end=end)


def orders(dbs: Any) -> list[tuple[Any, ...]]:
    return query(dbs, "oltp", f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY order_id")  # noqa: S608 - fixed names


def generated(*, seed: int = 7, start: int = 0, count: int = 1000, total: int = 3000, days: int = 30) -> bytes:
    out = io.BytesIO()
    history.write_rows(out, seed=seed, start=start, count=count, total=total, days=days,
                       customers=[str(c[0]) for c in CUSTOMERS])
    return out.getvalue()


# --------------------------------------------------------------------------- the generator alone


def test_the_same_arguments_give_the_same_rows_and_another_seed_others() -> None:
    assert generated() == generated()
    assert generated(seed=8) != generated()
    assert generated(days=31) != generated()  # accepted_at is spread over the days asked for
    assert generated(total=4000) != generated()  # ... and over the load's orders
    assert generated(count=0) == b""


def test_any_slice_of_a_load_is_the_same_orders() -> None:
    """Order i depends on i alone, not on where its chunk starts: slices across block boundaries agree."""
    whole = generated(count=3000).splitlines()
    assert len(whole) == 3000
    assert generated(start=0, count=400).splitlines() + generated(start=400, count=2600).splitlines() == whole
    assert generated(start=1023, count=2).splitlines() == whole[1023:1025]


def test_the_menu_is_every_pizza_type_at_plausible_prices() -> None:
    assert set(history.MENU) == set(PIZZA_TYPES)
    prices = [Decimal(price) for _, sizes in history.MENU.values() for price, _ in sizes]
    assert all(Decimal("9") <= p <= Decimal("22") and p == p.quantize(Decimal("0.01")) for p in prices)


def test_order_ids_fit_the_column_and_sort_in_load_order() -> None:
    assert history.order_id(7, 12) == "hist-7-000000000012"
    ids = [history.order_id(-123456789, i) for i in (9, 10, 99, 100, 10**12 - 1)]
    assert ids == sorted(ids) and max(len(i) for i in ids) <= 64


@pytest.mark.parametrize("arguments", [{"start": -1}, {"count": history.MAX_CHUNK + 1}, {"days": 0},
                                       {"end": datetime(2025, 6, 1)}, {"seed": 10**50},
                                       {"start": 10**12 - 1, "count": 2, "total": 10**12 + 1},
                                       {"total": 9}, {"start": 5, "total": 14}])
def test_bad_arguments_are_refused_before_any_work(arguments: dict[str, Any]) -> None:
    call = {"seed": 7, "start": 0, "count": 10, "total": 10, "days": 30, "end": END, **arguments}
    with pytest.raises(ValueError):
        history.load_history_chunk(None, **call)


# --------------------------------------------------------------------------- loaded into OLTP


def test_a_chunk_loads_orders_and_their_outbox_rows(clean, oltp) -> None:
    assert load(oltp, 0, 1000) == {"inserted": 1000, "already_present": 0}
    assert counts(clean) == {"orders": 1000, "outbox": 1000, "rejected_orders": 0}
    assert scalar(clean, "oltp", """SELECT count(*) FROM outbox b JOIN orders o USING (order_id)
                                    WHERE b.accepted_at = o.accepted_at""") == 1000


def test_chunks_are_independent(clean, oltp) -> None:
    """[0, 1000) in one chunk gives the very rows [0, 400) and [400, 1000) give."""
    load(oltp, 0, 1000)
    whole = orders(clean)
    with oltp.cursor() as cur:
        cur.execute("TRUNCATE outbox, orders")
    oltp.commit()
    assert load(oltp, 400, 600)["inserted"] == 600
    assert load(oltp, 0, 400)["inserted"] == 400
    assert orders(clean) == whole


def test_a_rerun_changes_nothing(clean, oltp) -> None:
    """The same load again: nothing inserted, every order already present, the outbox not doubled."""
    load(oltp, 0, 1000)
    before = orders(clean)
    assert load(oltp, 0, 1000) == {"inserted": 0, "already_present": 1000}
    assert orders(clean) == before
    assert counts(clean)["outbox"] == 1000


def test_an_overlapping_load_adds_only_what_is_missing(clean, oltp) -> None:
    load(oltp, 0, 400)
    assert load(oltp, 0, 1000) == {"inserted": 600, "already_present": 400}
    assert counts(clean)["orders"] == counts(clean)["outbox"] == 1000


def test_a_load_that_races_another_keeps_the_other_loads_orders(clean, oltp, monkeypatch) -> None:
    """Orders stored between the check and the insert (another load): the chunk loads again, keeping them."""
    load(oltp, 0, 400)
    monkeypatch.setattr(history, "ANY_PRESENT_SQL", "SELECT %s IS NULL AND %s IS NULL")  # the check misses them
    assert load(oltp, 0, 1000) == {"inserted": 600, "already_present": 400}
    assert counts(clean)["outbox"] == 1000


def test_orders_already_synced_are_not_queued_again(clean, oltp) -> None:
    load(oltp, 0, 1000)
    warehouse = clean.connect("warehouse")
    try:
        assert run_sync(oltp, warehouse).synced == 1000
    finally:
        warehouse.close()
    assert load(oltp, 0, 1000) == {"inserted": 0, "already_present": 1000}
    assert counts(clean)["outbox"] == 0
    assert scalar(clean, "warehouse", "SELECT count(*) FROM orders_fact") == 1000


def test_orders_are_spread_over_the_days_before_the_end(clean, oltp) -> None:
    load(oltp, 0, 5000, days=30)
    first, last, late_store, max_delay = query(clean, "oltp", """
        SELECT min(accepted_at), max(accepted_at), max(stored_at), max(stored_at - accepted_at) FROM orders""")[0]
    assert END - timedelta(days=30) <= first < END - timedelta(days=29)
    assert END - timedelta(days=1) < last <= END and late_store <= END
    assert timedelta(0) <= max_delay <= timedelta(milliseconds=history.MAX_DELAY_MS)
    by_day = Counter(row[0] for row in query(clean, "oltp", "SELECT date_trunc('day', %s - accepted_at) FROM orders",
                                                  (END,)))
    assert len(by_day) == 30 and min(by_day.values()) > 100  # every day has orders: ~167 each
    # In the order of their ids, as live orders arrive (the sync reads the outbox oldest first).
    in_id_order = [row[0] for row in query(clean, "oltp", "SELECT accepted_at FROM orders ORDER BY order_id")]
    assert in_id_order == sorted(in_id_order)


def test_every_order_passes_the_apis_own_rules_with_a_menus_skew(clean, oltp) -> None:
    load(oltp, 0, 5000)
    rows = orders(clean)
    for order_id, customer_id, pizza, qty, price, accepted_at, _ in rows:
        QueuedOrder.model_validate({"order_id": order_id, "customer_id": customer_id, "type": pizza, "qty": qty,
                                    "retail_price": price, "accepted_at": accepted_at})
        assert 1 <= qty <= 4 and Decimal("9") <= price <= Decimal("22")
    types = Counter(row[2] for row in rows)
    qtys = Counter(row[3] for row in rows)
    assert set(types) == set(PIZZA_TYPES) and types["pepperoni"] > types["cheese"] > types["veggie"]
    assert qtys[1] > qtys[2] > qtys[3] > qtys[4]
    assert len({row[1] for row in rows}) == len(CUSTOMERS)  # every customer ordered


# --------------------------------------------------------------------------- through the ops function


def history_event(**overrides: Any) -> dict[str, Any]:
    return {"action": "history_load", "seed": 7, "start": 0, "count": 500, "total": 3000, "days": 30,
            "end": END.isoformat(),
            **overrides}


def test_ops_history_load_loads_a_chunk(handler_env) -> None:
    seed_customers(handler_env, CUSTOMERS)
    assert ops.handler(history_event(), None) == {"inserted": 500, "already_present": 0}
    assert ops.handler(history_event(start=250), None) == {"inserted": 250, "already_present": 250}


def test_ops_history_load_without_customers_says_what_to_run(handler_env) -> None:
    assert ops.handler(history_event(), None) == {"error": "no customers: run txpipe seed --generate N first"}
    assert "error" in ops.handler(history_event(end="2025-06-01T12:00:00"), None)  # no UTC offset


def test_the_sync_moves_a_loaded_history_to_the_warehouse(handler_env) -> None:
    seed_customers(handler_env, CUSTOMERS)
    for start in range(0, 3000, 1000):
        ops.handler(history_event(start=start, count=1000), None)
    result = sync_once(handler_env)
    assert (result.synced, result.inserted, result.pending) == (3000, 3000, 0)
    assert scalar(handler_env, "warehouse", "SELECT count(*) FROM orders_fact") == 3000
    assert (scalar(handler_env, "warehouse", "SELECT sum(qty * retail_price) FROM orders_fact")
            == scalar(handler_env, "oltp", "SELECT sum(qty * retail_price) FROM orders"))

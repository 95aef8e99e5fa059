"""The store function against a real OLTP database: exactly-once orders and rejections.

What happens when a message cannot be stored is in test_store_failures.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lambdas import store
from lambdas.core.orders import Order
from lambdas.core.rejections import conflict_reason
from lambdas.core.store import REASON_CONFLICT, REASON_UNKNOWN_CUSTOMER
from tests.integration.helpers import counts, event, message, order, query, seed_customers

NO_FAILURES = {"batchItemFailures": []}


@pytest.fixture
def customers(handler_env):
    seed_customers(handler_env, [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"]])
    return handler_env


def test_batch_stores_orders_and_one_outbox_row_each(customers):
    """A batch of valid orders is stored with one outbox row per order and no batch item failures."""
    accepted = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    orders = [order(f"o-{i}", customer_id=1 + i % 3, pizza="veggie", qty=i + 1, price="12.34", accepted_at=accepted)
              for i in range(5)]
    assert store.handler(event(*orders), None) == NO_FAILURES
    rows = query(customers, "oltp", "SELECT order_id, customer_id, pizza_type, qty, retail_price, accepted_at "
                                    "FROM orders ORDER BY order_id")
    assert rows == [(o.order_id, o.customer_id, "veggie", o.qty, Decimal("12.34"), accepted) for o in orders]
    outbox = query(customers, "oltp", "SELECT order_id, accepted_at FROM outbox ORDER BY order_id")
    assert outbox == [(o.order_id, accepted) for o in orders]
    assert counts(customers)["rejected_orders"] == 0


def test_redelivered_event_stores_nothing_new(customers):
    """Redelivering the same SQS event is not a failure and leaves orders and outbox unchanged."""
    evt = event(order("a", 1), order("b", 2, "pepperoni", 3, "9.99"))
    assert store.handler(evt, None) == NO_FAILURES
    before = counts(customers)
    stored_at = query(customers, "oltp", "SELECT order_id, stored_at FROM orders ORDER BY order_id")
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == before == {"orders": 2, "outbox": 2, "rejected_orders": 0}
    assert query(customers, "oltp", "SELECT order_id, stored_at FROM orders ORDER BY order_id") == stored_at


def test_redelivery_after_sync_does_not_recreate_outbox_row(customers):
    """A message redelivered after its outbox row was consumed does not put the order back in the outbox."""
    o = order("synced-1", 1)
    assert store.handler(event(o), None) == NO_FAILURES
    conn = customers.connect("oltp", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM outbox")
    conn.close()
    assert store.handler(event(o), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 0, "rejected_orders": 0}


def test_same_order_id_with_different_content_is_rejected(customers):
    """An order_id re-sent with other content goes to rejected_orders and the original row is kept unchanged."""
    original = order("dup", 1, "cheese", 2, "10.00")
    assert store.handler(event(original), None) == NO_FAILURES
    changed = order("dup", 1, "cheese", 5, "10.00")
    assert store.handler(event(changed), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT customer_id, pizza_type, qty, retail_price FROM orders") == [
        (1, "cheese", 2, Decimal("10.00"))]
    rejected = query(customers, "oltp", "SELECT order_id, reason, payload FROM rejected_orders")
    kept = conflict_reason(REASON_CONFLICT, 1, "cheese", 2, Decimal("10.00"), original.accepted_at)
    assert rejected == [("dup", kept, changed.to_message())]
    assert REASON_CONFLICT == "order_id already used for a different order"
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 1}


def test_same_order_with_equivalent_price_text_is_a_duplicate(customers):
    """A re-sent order whose price is written differently but equal ("10" vs "10.00") is a duplicate, not a conflict."""
    accepted = datetime.now(UTC)
    original = order("p-1", 1, "supreme", 1, "10.00", accepted)
    assert store.handler(event(original), None) == NO_FAILURES
    body = json.loads(original.to_message())
    body["retail_price"] = "10"
    assert store.handler(event(json.dumps(body)), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 0}


def test_unknown_customer_is_rejected_not_failed(customers):
    """An order for an unknown customer_id is kept in rejected_orders, not stored and not reported as a failure."""
    good, unknown = order("g", 1), order("u", 999)
    assert store.handler(event(good, unknown), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT order_id FROM orders") == [("g",)]
    assert query(customers, "oltp", "SELECT order_id FROM outbox") == [("g",)]
    assert query(customers, "oltp", "SELECT order_id, reason, payload FROM rejected_orders") == [
        ("u", REASON_UNKNOWN_CUSTOMER, unknown.to_message())]
    assert REASON_UNKNOWN_CUSTOMER == "unknown customer_id"


def test_redelivered_rejected_message_is_rejected_once(customers):
    """Redelivering a rejected message (unknown customer or conflict) does not add a second rejected row."""
    assert store.handler(event(order("c", 1, qty=1)), None) == NO_FAILURES
    evt = event(order("u", 999), order("c", 1, qty=9))
    assert store.handler(evt, None) == NO_FAILURES
    assert store.handler(evt, None) == NO_FAILURES
    assert sorted(query(customers, "oltp", "SELECT order_id, split_part(reason, '; ', 1) FROM rejected_orders")) == [
        ("c", REASON_CONFLICT), ("u", REASON_UNKNOWN_CUSTOMER)]


def test_an_order_re_sent_unchanged_is_rejected_once(customers):
    """The same still-unknown order sent again (a new message, a later accepted_at), twice in one batch and once
    more later, is one rejected row; the same order_id with other content is a rejection of its own."""
    first = order("again", 999, qty=2)
    resent = Order(first.order_id, first.customer_id, first.type, first.qty, first.retail_price,
                   first.accepted_at + timedelta(minutes=5))
    assert store.handler(event(first), None) == NO_FAILURES
    assert store.handler(event(resent, resent), None) == NO_FAILURES
    assert store.handler(event(order("again", 999, qty=3)), None) == NO_FAILURES
    rows = query(customers, "oltp", "SELECT order_id, payload FROM rejected_orders ORDER BY id")
    assert [(order_id, json.loads(payload)["qty"]) for order_id, payload in rows] == [("again", 2), ("again", 3)]


def test_two_copies_of_same_order_in_one_batch_stored_once(customers):
    """Two copies of the same order in one batch are stored once, with one outbox row and no failure."""
    o = order("twice", 2, "meat lover", 4, "15.50")
    assert store.handler(event(o, o), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 0}
    assert query(customers, "oltp", "SELECT pizza_type, qty, retail_price FROM orders") == [
        ("meat lover", 4, Decimal("15.50"))]


def test_two_different_orders_with_same_id_in_one_batch(customers):
    """Within one batch the first order with an id is stored and a differing second one is rejected as a conflict."""
    first, second = order("same", 1, qty=1), order("same", 1, qty=2)
    assert store.handler(event(first, second), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT qty FROM orders") == [(1,)]
    assert query(customers, "oltp", "SELECT split_part(reason, '; ', 1), payload FROM rejected_orders") == [
        (REASON_CONFLICT, second.to_message())]


def test_connection_cut_by_server_is_retried_on_a_fresh_one(customers):
    """If the server cut the cached OLTP connection, the batch is retried once on a new connection and stored."""
    from lambdas.core import db

    assert store.handler(event(order("warm", 1)), None) == NO_FAILURES  # opens the cached connection
    key = ("oltp", customers.endpoints["oltp"])
    old_pid = db.cached_connection(key, lambda: None).get_backend_pid()
    admin = customers.connect("oltp", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        assert cur.fetchall() == [(True,)]
    admin.close()
    evt = event(message(order("a", 1), "m-a"), message(order("b", 2), "m-b"))
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == {"orders": 3, "outbox": 3, "rejected_orders": 0}
    assert db.cached_connection(key, lambda: None).get_backend_pid() != old_pid


def test_large_batch_with_copies_across_pages(customers):
    """A 250-record batch (beyond one INSERT page) with every order sent twice stores each order exactly once."""
    orders = [order(f"big-{i:03d}", 1 + i % 3, qty=1 + i % 5) for i in range(125)]
    assert store.handler(event(*orders, *orders), None) == NO_FAILURES
    assert counts(customers) == {"orders": 125, "outbox": 125, "rejected_orders": 0}


def test_parallel_overlapping_batches_store_each_order_once(customers):
    """Two store invocations running at once with the same orders in opposite order store each order once."""
    import threading

    from lambdas.core import db

    orders = [order(f"par-{i:02d}", 1 + i % 3) for i in range(40)]
    responses: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def invoke(batch: list) -> None:
        try:
            barrier.wait(timeout=5)
            responses.append(store.handler(event(*batch), None))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            db.drop_cached("oltp")  # this thread's cached connection

    threads = [threading.Thread(target=invoke, args=(batch,)) for batch in (orders, orders[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert responses == [NO_FAILURES, NO_FAILURES]
    assert counts(customers) == {"orders": 40, "outbox": 40, "rejected_orders": 0}

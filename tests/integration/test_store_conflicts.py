"""An order_id re-sent with other content (lambdas.core.store, lambdas.core.rejections) against a real OLTP
database: the rejection names the kept order, and rejections are counted and filtered by kind of reason."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lambdas import store
from lambdas.core import rejections
from lambdas.core.store import REASON_CONFLICT, REASON_UNKNOWN_CUSTOMER
from tests.integration.helpers import event, order, query, seed_customers

NO_FAILURES = {"batchItemFailures": []}


@pytest.fixture
def customers(handler_env):
    seed_customers(handler_env, [[1, "TX", "A"], [2, "CA", "B"]])
    return handler_env


def test_the_rejection_names_the_kept_order_even_when_the_rejected_one_was_accepted_first(customers):
    """The first stored is kept though a copy accepted a minute earlier arrives later: that copy is rejected,
    its reason naming the kept order's accepted_at and content."""
    now = datetime.now(UTC)
    stored, earlier = order("k-1", 1, "veggie", 2, "9.50", now), order("k-1", 2, "supreme", 7, "20.00",
                                                                       now - timedelta(minutes=1))
    assert store.handler(event(stored), None) == NO_FAILURES
    assert store.handler(event(earlier), None) == NO_FAILURES
    [(reason,)] = query(customers, "oltp", "SELECT reason FROM rejected_orders")
    assert reason == (f"{REASON_CONFLICT}; kept the order stored first: accepted_at {now.isoformat()}, "
                      "customer_id 1, 2 x veggie at 9.50")
    assert query(customers, "oltp", "SELECT customer_id, qty, retail_price FROM orders") == [(1, 2, Decimal("9.50"))]


def test_a_message_rejected_before_the_kept_order_was_named_is_not_rejected_again(customers):
    """A conflict rejected by an earlier release (reason without the kept order) and then redelivered keeps its
    one rejected row: the fingerprint is of the kind of reason, not of its detail."""
    assert store.handler(event(order("old-1", 1, qty=1)), None) == NO_FAILURES
    changed = order("old-1", 1, qty=3)
    conn = customers.connect("oltp", autocommit=True)
    with conn.cursor() as cur:
        old_fingerprint = hashlib.sha256(f"{REASON_CONFLICT}\n{changed.to_message()}".encode()).hexdigest()
        cur.execute("INSERT INTO rejected_orders (fingerprint, order_id, payload, reason) VALUES (%s, %s, %s, %s)",
                    (old_fingerprint, "old-1", changed.to_message(), REASON_CONFLICT))
    conn.close()
    assert store.handler(event(changed), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT reason FROM rejected_orders") == [(REASON_CONFLICT,)]


def test_rejections_are_counted_and_filtered_by_kind(customers):
    """Conflicts naming different kept orders are one kind in the summary and the --reason filter."""
    for i in range(3):
        assert store.handler(event(order(f"c-{i}", 1, qty=1 + i), order(f"c-{i}", 2, qty=9)), None) == NO_FAILURES
    assert store.handler(event(order("u-1", 999)), None) == NO_FAILURES
    conn = customers.connect("oltp")
    try:
        summary = rejections.summary(conn)
        conflicts = rejections.page(conn, reason=REASON_CONFLICT)
        unknown = rejections.page(conn, reason=REASON_UNKNOWN_CUSTOMER)
    finally:
        conn.close()
    assert (summary["count"], summary["reasons"]) == (4, {REASON_CONFLICT: 3, REASON_UNKNOWN_CUSTOMER: 1})
    assert sorted(row["order_id"] for row in conflicts) == ["c-0", "c-1", "c-2"]
    assert len({row["reason"] for row in conflicts}) == 3  # each names its own kept order
    assert [row["order_id"] for row in unknown] == ["u-1"]

"""Rejected orders that were fixed (lambdas/core/rejections.py through the ops function, real OLTP database):
an unknown customer's order stored after all is resolved, leaves the pending list and counts, and is what
`rejected_purge` deletes; a conflict and a still-unknown customer stay pending."""

from __future__ import annotations

from lambdas import ops, store
from lambdas.core.rejections import UNKNOWN_CUSTOMER
from lambdas.core.store import REASON_CONFLICT, REASON_UNKNOWN_CUSTOMER
from tests.integration.helpers import event, order, query, seed_customers

NO_FAILURES = {"batchItemFailures": []}


def test_the_reason_resolved_by_storing_is_the_stores_unknown_customer() -> None:
    assert UNKNOWN_CUSTOMER == REASON_UNKNOWN_CUSTOMER


def test_an_order_stored_after_its_rejection_is_resolved_and_purged(handler_env) -> None:
    """fixed: customer 9 unknown, then loaded, and the same order re-sent -> stored, resolved. still: customer
    8 never loaded -> pending. dup: re-sent with other content (a conflict) -> pending for good. early: its
    order_id was stored for customer 1 before an unknown customer's copy came -> pending (stored before it)."""
    seed_customers(handler_env, [[1, "TX", "A"]])
    fixed, still = order("fixed", customer_id=9), order("still", customer_id=8)
    dup, early = order("dup", customer_id=1), order("early", customer_id=1)
    assert store.handler(event(dup, early), None) == NO_FAILURES
    assert store.handler(event(fixed, still, order("dup", customer_id=1, qty=2), order("early", customer_id=7)),
                         None) == NO_FAILURES
    listed = ops.handler({"action": "rejected"}, None)
    assert (listed["count"], listed["resolved"]) == (4, 0)
    assert listed["reasons"] == {REASON_UNKNOWN_CUSTOMER: 3, REASON_CONFLICT: 1}

    seed_customers(handler_env, [[9, "WY", "Fixed"], [7, "OK", "Late"]])
    assert store.handler(event(fixed), None) == NO_FAILURES  # the exported order re-sent
    assert query(handler_env, "oltp", "SELECT count(*) FROM orders WHERE order_id = 'fixed'") == [(1,)]

    listed = ops.handler({"action": "rejected"}, None)
    assert (listed["count"], listed["resolved"]) == (3, 1)
    assert listed["reasons"] == {REASON_UNKNOWN_CUSTOMER: 2, REASON_CONFLICT: 1}
    assert sorted(row["order_id"] for row in listed["rows"]) == ["dup", "early", "still"]
    assert not any(row["resolved"] for row in listed["rows"])
    everything = ops.handler({"action": "rejected", "all": True}, None)["rows"]
    [resolved] = [row for row in everything if row["resolved"]]
    assert resolved["order_id"] == "fixed" and resolved["stored_at"] > resolved["rejected_at"]
    assert ops.handler({"action": "status"}, None)["rejected_orders"] == 3

    assert "error" in ops.handler({"action": "rejected_purge"}, None)  # only the resolved can be purged
    assert ops.handler({"action": "rejected_purge", "resolved": True}, None) == {"purged": 1}
    assert ops.handler({"action": "rejected_purge", "resolved": True}, None) == {"purged": 0}
    assert sorted(r[0] for r in query(handler_env, "oltp", "SELECT order_id FROM rejected_orders")) == [
        "dup", "early", "still"]
    after = ops.handler({"action": "rejected", "all": True}, None)
    assert (after["count"], after["resolved"], len(after["rows"])) == (3, 0, 3)


def test_the_reason_filter_and_the_pages_skip_the_resolved(handler_env) -> None:
    """--reason and the export's keyset pages (after_id) list pending ones only, unless all."""
    orders = [order(f"u-{i}", customer_id=100 + i) for i in range(5)]
    assert store.handler(event(*orders), None) == NO_FAILURES
    seed_customers(handler_env, [[101, "TX", None], [103, "TX", None]])
    assert store.handler(event(orders[1], orders[3]), None) == NO_FAILURES
    first = ops.handler({"action": "rejected", "limit": 2, "reason": REASON_UNKNOWN_CUSTOMER}, None)["rows"]
    assert [row["order_id"] for row in first] == ["u-0", "u-2"]
    rest = ops.handler({"action": "rejected", "limit": 2, "after_id": first[-1]["id"]}, None)["rows"]
    assert [row["order_id"] for row in rest] == ["u-4"]
    every = ops.handler({"action": "rejected", "limit": 10, "all": True}, None)["rows"]
    assert [(row["order_id"], row["resolved"]) for row in every] == [
        ("u-0", False), ("u-1", True), ("u-2", False), ("u-3", True), ("u-4", False)]

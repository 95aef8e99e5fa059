"""The SLA report leaves out the orders of `seed --history` (lambdas.core.reporting.sla_report, issue 16 item 11):
they are old by design, so they would all be late. They are known by their order_ids (history.ORDER_ID_LIKE),
counted apart, and counted in only when asked (include_history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lambdas.core import history
from tests.integration.helpers import order, seed_customers, store_directly, sync_once
from tests.integration.helpers import sla_once as sla

CUSTOMERS = [[1, "TX", "A"], [2, "CA", "B"]]


@pytest.fixture
def mixed(clean):
    """Three live orders accepted a minute ago and synced now; four history orders of 2 to 5 days ago, three of
    them synced now and one still pending; a live order whose client id only looks like history's, pending."""
    seed_customers(clean, CUSTOMERS)
    now = datetime.now(UTC)
    store_directly(clean, [order(f"live-{i}", 1, accepted_at=now - timedelta(minutes=1)) for i in range(3)]
                   + [order(history.order_id(42, i), 2, accepted_at=now - timedelta(days=2 + i)) for i in range(3)])
    assert sync_once(clean).pending == 0
    store_directly(clean, [order(history.order_id(42, 3), 2, accepted_at=now - timedelta(days=5)),
                           order("hist-client-order", 1, accepted_at=now - timedelta(seconds=5))])
    return clean


def test_history_is_left_out_and_counted_apart(mixed) -> None:
    """Default: live orders only, no breach from history; "history" says how many were left out and pending."""
    result = sla(mixed, sla_seconds=600, since_seconds=None)
    assert (result["oltp_orders"], result["warehouse_orders"], result["synced"], result["pending"]) == (4, 3, 3, 1)
    assert result["breaches"] == 0
    assert result["lag_seconds"]["max"] < 600
    assert result["oldest_pending_seconds"] < 60  # the live pending order, not the 5-day-old history one
    assert result["history"] == {"orders": 4, "pending": 1, "counted": False}


def test_include_history_counts_it_as_late(mixed) -> None:
    """include_history: every order counts, and the history orders (days old) are breaches."""
    result = sla(mixed, sla_seconds=600, since_seconds=None, include_history=True)
    assert (result["oltp_orders"], result["warehouse_orders"], result["synced"], result["pending"]) == (8, 6, 6, 2)
    assert result["breaches"] == 4  # three synced days late, one pending for five days
    assert result["oldest_pending_seconds"] > 5 * 86_400 - 60
    assert result["history"] == {"orders": 4, "pending": 1, "counted": True}


def test_the_window_counts_history_in_it_and_pending_history_whenever_accepted(mixed) -> None:
    """A 3-day window holds the history orders of 2 days ago (synced) and the pending one of 5 days ago."""
    result = sla(mixed, sla_seconds=600, since_seconds=3 * 86_400)
    assert result["history"] == {"orders": 2, "pending": 1, "counted": False}
    assert sla(mixed, sla_seconds=600, since_seconds=600)["history"] == {"orders": 1, "pending": 1, "counted": False}


def test_a_live_breach_still_counts(mixed) -> None:
    """With history left out, a live order synced later than the SLA is still a breach."""
    # the three live orders synced ~60 s after their accept, and the live one pending for 5 s
    assert sla(mixed, sla_seconds=1, since_seconds=None)["breaches"] == 4

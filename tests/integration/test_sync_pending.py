"""What a sync calls pending while another run is moving orders (lambdas.core.sync.pending_backlog), against
a real PostgreSQL: rows a run in progress has claimed are `being_moved`, never `pending`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdas.core.sync import CLAIM_DELETE_SQL, CLAIM_SQL, SyncResult, pending_backlog, run_sync
from tests.integration.helpers import order, scalar, seed_customers, store_directly

ORDERS = 100
HELD = 30  # the batch the other run has claimed


class HeldWarehouse:
    """A warehouse connection whose first statement waits until `release` is set: the run using it has
    claimed its batch and holds it, as a scheduled run does while its warehouse loads."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.reached, self.release = threading.Event(), threading.Event()

    def cursor(self) -> Any:
        self.reached.set()
        assert self.release.wait(30), "the held run was never released"
        return self._conn.cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def backlog(clean: Any) -> Any:
    seed_customers(clean, [[1, "TX", "A"], [2, "CA", "B"]])
    start = datetime.now(UTC) - timedelta(minutes=2)
    store_directly(clean, [order(f"p-{i:03d}", 1 + i % 2, accepted_at=start + timedelta(milliseconds=i))
                           for i in range(ORDERS)])
    return clean


@pytest.fixture
def connections(backlog: Any) -> Iterator[list[Any]]:
    opened: list[Any] = []

    def connect(name: str) -> Any:
        opened.append(backlog.connect(name))
        return opened[-1]

    yield connect  # type: ignore[misc]
    for conn in opened:
        conn.close()  # an open transaction left by a failed test must not block the next one's TRUNCATE


def test_a_run_reports_as_being_moved_what_a_concurrent_run_holds(backlog: Any, connections: Any) -> None:
    """Two syncs at once: while one holds its claimed batch of 30, the other moves the other 70 and reports
    0 pending and 30 being moved; once the first commits, nothing is left either way."""
    held = HeldWarehouse(connections("warehouse"))
    results: list[SyncResult] = []
    # max_seconds=0: one batch and no claim ahead, so the held run holds exactly HELD rows, locked.
    scheduled = threading.Thread(target=lambda: results.append(
        run_sync(connections("oltp"), held, batch_rows=HELD, max_seconds=0)))
    scheduled.start()
    try:
        assert held.reached.wait(30), "the scheduled run never claimed"
        now = run_sync(connections("oltp"), connections("warehouse"))
    finally:
        held.release.set()
        scheduled.join(30)
    print(f"\nsync-now beside a run holding {HELD}: synced {now.synced}, pending {now.pending}, "
          f"being moved {now.being_moved}; the held run then synced {results[0].synced}, "
          f"pending {results[0].pending}, being moved {results[0].being_moved}")
    assert (now.synced, now.pending, now.being_moved) == (ORDERS - HELD, 0, HELD)
    assert 115 <= now.oldest_pending_seconds < 300  # the held orders are not in the warehouse yet
    assert (results[0].synced, results[0].pending, results[0].being_moved) == (HELD, 0, 0)
    assert scalar(backlog, "warehouse", "SELECT count(DISTINCT order_id) FROM orders_fact") == ORDERS
    # the run record says what was pending, not what the other run was moving
    assert scalar(backlog, "warehouse", "SELECT max(pending) FROM sync_runs") == 0


def test_rows_a_pipelined_claim_deleted_are_being_moved_not_pending(backlog: Any, connections: Any) -> None:
    """Rows a run's claim ahead has deleted, not yet committed (still visible to others), count as being
    moved; a lock or delete that ended (committed or rolled back) holds nothing."""
    other, reader = connections("oltp"), connections("oltp")
    with other.cursor() as cur:
        cur.execute(CLAIM_DELETE_SQL, ("-infinity", 40))
        assert len(cur.fetchall()) == 40
    figures = pending_backlog(reader, datetime.now(UTC))
    assert (figures.pending, figures.being_moved) == (ORDERS - 40, 40)
    other.rollback()  # the run died: its rows are pending again
    assert (pending_backlog(reader, datetime.now(UTC)).pending, pending_backlog(reader, datetime.now(UTC)).being_moved
            ) == (ORDERS, 0)
    with other.cursor() as cur:
        cur.execute(CLAIM_SQL, ("-infinity", 25))
    locked = pending_backlog(reader, datetime.now(UTC))
    other.commit()  # a lock released by commit (rows not deleted) leaves its xmax behind: not held any more
    after = pending_backlog(reader, datetime.now(UTC))
    assert ((locked.pending, locked.being_moved), (after.pending, after.being_moved)) == (
        (ORDERS - 25, 25), (ORDERS, 0))


def test_an_empty_outbox_has_nothing_pending_or_being_moved(clean: Any) -> None:
    conn = clean.connect("oltp")
    try:
        figures = pending_backlog(conn, datetime.now(UTC))
    finally:
        conn.close()
    assert (figures.pending, figures.being_moved, figures.oldest_seconds) == (0, 0, 0.0)

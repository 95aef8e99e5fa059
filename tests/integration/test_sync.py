"""Sync from the OLTP outbox into the warehouse fact table against real databases."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lambdas import sync
from lambdas.core.sync import SyncResult, run_sync
from lambdas.core.warehouse import BatchFile
from lambdas.core.warehouse.postgres import PostgresWarehouse
from tests.conftest import load_event
from tests.integration.helpers import order, query, scalar, seed_customers, store_directly, sync_once
from txpipe_cli.local.events import LambdaContext, scheduled_event

CUSTOMERS = [[1, "TX", "A"], [2, "CA", "B"], [3, "NY", "C"]]
STATE_OF = {1: "TX", 2: "CA", 3: "NY"}


class SimulatedCrash(Exception):
    pass


class _CrashingCursor:
    def __init__(self, cursor: Any, crash_on: str) -> None:
        self._cursor, self._crash_on = cursor, crash_on

    def __enter__(self) -> _CrashingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()

    def execute(self, sql: str, params: Any = None) -> None:
        if sql.lstrip().startswith(self._crash_on):
            raise SimulatedCrash(sql)
        self._cursor.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class CrashOn:
    """A connection whose cursors raise on the first statement starting with `crash_on` (the process 'dies')."""

    def __init__(self, conn: Any, crash_on: str) -> None:
        self._conn, self._crash_on = conn, crash_on

    def cursor(self) -> _CrashingCursor:
        return _CrashingCursor(self._conn.cursor(), self._crash_on)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def dbs(clean):
    seed_customers(clean, CUSTOMERS)
    return clean


@pytest.fixture
def conns(dbs):
    """(oltp, warehouse) connections for run_sync, closed afterwards."""
    oltp, warehouse = dbs.connect("oltp"), dbs.connect("warehouse")
    yield oltp, warehouse
    oltp.close()
    warehouse.close()


def make_orders(n: int, prefix: str = "o", accepted_at: datetime | None = None) -> list:
    accepted_at = accepted_at or datetime.now(UTC)
    return [order(f"{prefix}-{i:05d}", customer_id=1 + i % 3, pizza="cheese", qty=1 + i % 4, price="10.50",
                  accepted_at=accepted_at + timedelta(microseconds=i)) for i in range(n)]


def fact_rows(dbs) -> list[tuple]:
    return query(dbs, "warehouse", "SELECT order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, "
                                   "loaded_at FROM orders_fact ORDER BY order_id")


def outbox_ids(dbs) -> list[str]:
    return [r[0] for r in query(dbs, "oltp", "SELECT order_id FROM outbox ORDER BY order_id")]


def test_sync_moves_orders_into_fact_table(dbs, conns):
    """After N stored orders, a sync loads N fact rows with the customer's state and empties the outbox."""
    orders = make_orders(12, accepted_at=datetime.now(UTC) - timedelta(seconds=5))
    store_directly(dbs, orders)
    before = datetime.now(UTC)
    result = run_sync(*conns)
    after = datetime.now(UTC)
    assert isinstance(result, SyncResult)
    assert (result.synced, result.pending, result.batches, result.oldest_pending_seconds) == (12, 0, 1, 0.0)
    rows = fact_rows(dbs)
    assert [r[:7] for r in rows] == [
        (o.order_id, o.customer_id, STATE_OF[o.customer_id], "cheese", o.qty, Decimal("10.50"), o.accepted_at)
        for o in orders]
    assert all(before <= r[7] <= after and r[7] >= r[6] for r in rows)
    assert outbox_ids(dbs) == []
    runs = query(dbs, "warehouse", "SELECT started_at, finished_at, synced, pending FROM sync_runs")
    assert len(runs) == 1
    started, finished, synced, pending = runs[0]
    assert (synced, pending) == (12, 0)
    assert before <= started <= finished <= after
    # the OLTP orders themselves stay
    assert scalar(dbs, "oltp", "SELECT count(*) FROM orders") == 12


def test_second_sync_moves_nothing(dbs, conns):
    """A second run right after a full sync moves 0 rows, changes no loaded_at and still records a run: PostgreSQL
    does not bill by wake, so an idle run is recorded there as any other."""
    store_directly(dbs, make_orders(5))
    assert run_sync(*conns).synced == 5
    rows = fact_rows(dbs)
    again = run_sync(*conns)
    assert (again.synced, again.pending, again.batches, again.warehouse_woken) == (0, 0, 0, True)
    assert fact_rows(dbs) == rows
    assert query(dbs, "warehouse", "SELECT synced, pending FROM sync_runs ORDER BY finished_at") == [(5, 0), (0, 0)]


def test_a_warehouse_factory_is_called_once_and_an_idle_run_is_still_recorded_locally(dbs):
    """Given a factory (what the sync function passes), run_sync opens the PostgreSQL warehouse once per run, at
    its first batch or, for an idle run, to record it: locally every run is recorded, as before."""
    oltp, opened = dbs.connect("oltp"), []

    def open_warehouse():
        opened.append(dbs.connect("warehouse"))
        return opened[-1]

    try:
        store_directly(dbs, make_orders(10))
        result = run_sync(oltp, open_warehouse, batch_rows=4)
        assert (result.synced, result.batches, result.warehouse_woken, len(opened)) == (10, 3, True, 1)
        idle = run_sync(oltp, open_warehouse)
        assert (idle.synced, idle.batches, idle.warehouse_woken, len(opened)) == (0, 0, True, 2)
    finally:
        oltp.close()
        for conn in opened:
            conn.close()
    assert query(dbs, "warehouse", "SELECT synced, pending FROM sync_runs ORDER BY finished_at") == [(10, 0), (0, 0)]


def test_sync_in_bounded_batches(dbs, conns):
    """With batch_rows=7, 30 orders are moved in 5 batches (7+7+7+7+2)."""
    store_directly(dbs, make_orders(30))
    seen: list[int] = []
    result = run_sync(*conns, batch_rows=7, progress=seen.append)
    assert (result.synced, result.batches, result.pending) == (30, 5, 0)
    assert seen == [7, 7, 7, 7, 2]
    assert scalar(dbs, "warehouse", "SELECT count(*) FROM orders_fact") == 30


def test_sync_exact_multiple_of_batch_rows(dbs, conns):
    """With 28 orders and batch_rows=7, all 28 are moved (the last empty claim ends the run)."""
    store_directly(dbs, make_orders(28))
    result = run_sync(*conns, batch_rows=7)
    assert (result.synced, result.batches, result.pending) == (28, 4, 0)
    assert outbox_ids(dbs) == []


def test_time_budget_leaves_rest_pending(dbs, conns):
    """When max_seconds is spent after a batch, the run stops and reports the rest as pending with its age."""
    store_directly(dbs, make_orders(10, accepted_at=datetime.now(UTC) - timedelta(seconds=60)))
    result = run_sync(*conns, batch_rows=4, max_seconds=0)
    assert (result.synced, result.batches, result.pending) == (4, 1, 6)
    assert 59 <= result.oldest_pending_seconds < 120
    assert len(outbox_ids(dbs)) == 6
    assert query(dbs, "warehouse", "SELECT synced, pending FROM sync_runs") == [(4, 6)]


def test_crash_after_warehouse_commit_before_outbox_delete(dbs):
    """A crash between the warehouse commit and the outbox delete is repaired by the next run, keeping loaded_at."""
    orders = make_orders(9)
    store_directly(dbs, orders)
    oltp, warehouse = dbs.connect("oltp"), dbs.connect("warehouse")
    with pytest.raises(SimulatedCrash):
        run_sync(CrashOn(oltp, "DELETE FROM outbox"), warehouse, batch_rows=100)
    oltp.close()  # the crashed process's connections go away; its outbox locks are released
    warehouse.close()
    first = fact_rows(dbs)
    assert len(first) == 9  # the warehouse had committed
    assert len(outbox_ids(dbs)) == 9  # but the outbox still lists every order

    result = sync_once(dbs)
    assert result.pending == 0
    assert (result.synced, result.inserted, result.already_present) == (9, 0, 9)  # said as it is
    assert fact_rows(dbs) == first  # one row per order, original loaded_at
    assert outbox_ids(dbs) == []


def test_rows_already_in_warehouse_keep_their_loaded_at(dbs, conns):
    """Orders already present in orders_fact (an earlier half-finished run) are not reloaded; others are."""
    orders = make_orders(4)
    store_directly(dbs, orders)
    old_loaded = datetime(2020, 1, 1, tzinfo=UTC)
    wh = dbs.connect("warehouse", autocommit=True)
    with wh.cursor() as cur:
        for o in orders[:2]:
            cur.execute("""INSERT INTO orders_fact (order_id, customer_id, state, pizza_type, qty, retail_price,
                                                    accepted_at, stored_at, loaded_at)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                        (o.order_id, o.customer_id, STATE_OF[o.customer_id], o.type, o.qty, o.retail_price,
                         o.accepted_at, o.accepted_at, old_loaded))
    wh.close()
    result = run_sync(*conns)
    assert (result.synced, result.inserted, result.already_present) == (4, 2, 2)
    rows = {r[0]: r for r in fact_rows(dbs)}
    assert sorted(rows) == sorted(o.order_id for o in orders)
    assert [rows[o.order_id][7] for o in orders[:2]] == [old_loaded, old_loaded]
    assert all(rows[o.order_id][7] > old_loaded for o in orders[2:])
    assert outbox_ids(dbs) == []


def test_crash_before_warehouse_commit_leaves_outbox_untouched(dbs):
    """A crash while loading the warehouse commits nothing there and leaves every order pending for the next run."""
    store_directly(dbs, make_orders(6))
    oltp, warehouse = dbs.connect("oltp"), dbs.connect("warehouse")

    class FailingLoad(PostgresWarehouse):
        def load_batch(self, cur: Any, rows: Any) -> BatchFile | None:
            super().load_batch(cur, rows)  # the stage holds the batch, then the process dies
            raise SimulatedCrash("load")

    with pytest.raises(SimulatedCrash):
        run_sync(oltp, warehouse, backend=FailingLoad())
    oltp.close()
    warehouse.close()
    assert fact_rows(dbs) == []
    assert len(outbox_ids(dbs)) == 6
    oltp, warehouse = dbs.connect("oltp"), dbs.connect("warehouse")
    try:
        assert run_sync(oltp, warehouse).synced == 6
    finally:
        oltp.close()
        warehouse.close()
    assert len(fact_rows(dbs)) == 6


def test_parallel_syncs_do_not_duplicate(dbs):
    """Two sync runs in parallel threads over 2000 orders load exactly 2000 distinct fact rows and drain the outbox."""
    store_directly(dbs, make_orders(2000))
    results: list[SyncResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        oltp, warehouse = dbs.connect("oltp"), dbs.connect("warehouse")
        try:
            barrier.wait(timeout=10)
            results.append(run_sync(oltp, warehouse, batch_rows=50))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            oltp.close()
            warehouse.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(results) == 2
    assert sum(r.synced for r in results) == 2000  # disjoint claims: no order moved twice
    assert scalar(dbs, "warehouse", "SELECT count(*) FROM orders_fact") == 2000
    assert scalar(dbs, "warehouse", "SELECT count(DISTINCT order_id) FROM orders_fact") == 2000
    assert outbox_ids(dbs) == []


def test_order_stored_during_sync_is_never_lost(dbs, conns):
    """An order committed while a sync batch is in flight is either synced by that run or left pending, never lost."""
    store_directly(dbs, make_orders(12))
    late = order("late-order", 2, "supreme", 1, "20.00")
    stored = []

    class StoreMeanwhile(PostgresWarehouse):
        def load_batch(self, cur: Any, rows: Any) -> BatchFile | None:
            if not stored:  # during the first batch: another transaction commits a new order
                store_directly(dbs, [late])
                stored.append(late)
            return super().load_batch(cur, rows)

    result = run_sync(*conns, batch_rows=5, backend=StoreMeanwhile())
    in_fact = {r[0] for r in fact_rows(dbs)}
    pending = set(outbox_ids(dbs))
    assert in_fact.isdisjoint(pending)
    assert len(in_fact | pending) == 13
    assert ("late-order" in in_fact) != ("late-order" in pending)
    assert result.synced == len(in_fact) and result.pending == len(pending)
    run_sync(*conns)
    assert len(fact_rows(dbs)) == 13
    assert outbox_ids(dbs) == []


def test_late_committed_older_order_is_still_synced(dbs, conns):
    """An order whose accepted_at is older than already-synced ones (committed late) is still moved: no watermark."""
    store_directly(dbs, make_orders(3))
    run_sync(*conns)
    old = order("old-but-late", 3, accepted_at=datetime.now(UTC) - timedelta(hours=1))
    store_directly(dbs, [old])
    assert run_sync(*conns).synced == 1
    assert "old-but-late" in {r[0] for r in fact_rows(dbs)}


def test_sync_handler_with_scheduled_event(handler_env, monkeypatch):
    """The sync function, given a scheduled event, drains the outbox in TXPIPE_SYNC_BATCH_ROWS batches."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, make_orders(30))
    monkeypatch.setenv("TXPIPE_SYNC_BATCH_ROWS", "7")
    result = sync.handler(load_event("scheduled_sync.json"), LambdaContext("sync", 60))
    assert set(result) == {"synced", "pending", "seconds", "batches", "oldest_pending_seconds", "inserted",
                           "already_present", "warehouse_woken", "staged_batches", "being_moved"}
    assert (result["synced"], result["pending"], result["batches"], result["inserted"]) == (30, 0, 5, 30)
    assert scalar(handler_env, "warehouse", "SELECT count(*) FROM orders_fact") == 30
    idle = sync.handler(scheduled_event("sync"), None)
    assert (idle["synced"], idle["warehouse_woken"]) == (0, True)  # the local warehouse: every run recorded
    assert query(handler_env, "warehouse", "SELECT synced FROM sync_runs ORDER BY finished_at") == [(30,), (0,)]


def test_sync_handler_prints_one_emf_line_per_run_only_with_a_namespace(handler_env, monkeypatch, capsys):
    """On AWS (TXPIPE_METRICS_NAMESPACE set) each run, idle or not, prints one Embedded Metric Format line with
    the backlog it left; locally (no namespace) it prints nothing."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, make_orders(12, accepted_at=datetime.now(UTC) - timedelta(seconds=90)))
    monkeypatch.setenv("TXPIPE_SYNC_BATCH_ROWS", "5")
    sync.handler(scheduled_event("sync"), LambdaContext("sync", 0))  # one batch: 7 left pending
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("TXPIPE_METRICS_NAMESPACE", "txpipe")
    monkeypatch.setenv("TXPIPE_STAGE", "test")
    lines = []
    # one batch (2 left pending), then the rest, then a run that finds nothing to move
    for context in (LambdaContext("sync", 0), None, None):
        result = sync.handler(scheduled_event("sync"), context)
        lines += capsys.readouterr().out.splitlines()
        document = json.loads(lines[-1])
        assert (document["PendingOrders"], document["OldestPendingSeconds"]) == (
            result["pending"], result["oldest_pending_seconds"])
    documents = [json.loads(line) for line in lines]
    assert [d["PendingOrders"] for d in documents] == [2, 0, 0]
    assert documents[0]["OldestPendingSeconds"] >= 90
    assert {(d["Stage"], d["_aws"]["CloudWatchMetrics"][0]["Namespace"]) for d in documents} == {("test", "txpipe")}


def test_sync_handler_respects_remaining_time(handler_env, monkeypatch):
    """With no time left on the Lambda context, the sync function does one batch and reports the rest pending."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, make_orders(12))
    monkeypatch.setenv("TXPIPE_SYNC_BATCH_ROWS", "5")
    result = sync.handler(scheduled_event("sync"), LambdaContext("sync", 0))
    assert (result["synced"], result["pending"], result["batches"]) == (5, 7, 1)


def test_order_ids_with_csv_special_characters_survive_the_bulk_load(dbs, conns):
    """Order ids with commas, quotes, backslashes, spaces or NULL-like text load into the warehouse unchanged."""
    ids = ['a,b', 'quote"inside', "single'quote", "back\\slash", "\\N", " padded ", "\\.", "x" * 64, "NULL",
           "~!@#$%^&*()"]
    store_directly(dbs, [order(i, 1, "meat lover") for i in ids])
    assert run_sync(*conns).synced == len(ids)
    assert sorted(r[0] for r in fact_rows(dbs)) == sorted(ids)
    assert {r[3] for r in fact_rows(dbs)} == {"meat lover"}
    assert outbox_ids(dbs) == []

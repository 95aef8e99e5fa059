"""The Redshift warehouse without a staging bucket: the stage filled by parameterized multi-row INSERTs.

redshift-connector talks to the session's PostgreSQL through tests/support/redshift_shim.py (see
tests/integration/conftest.py, whose fixtures these tests share); everything else is the real code:
insert_batch, run_sync with a RedshiftWarehouse that has no S3 stage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from lambdas.core.schema import BATCH_TABLE_DDL
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import LOAD_CHUNK_ROWS, RedshiftWarehouse, insert_batch
from tests.integration.helpers import order, store_directly
from tests.support.redshift import STATE_OF, FailingCommit, fact_rows, outbox_ids, tricky_orders


class CountingCursor:
    """A cursor that records the SQL and parameter count of each execute."""

    def __init__(self, cursor: Any) -> None:
        self.cursor, self.calls = cursor, []

    def execute(self, sql: str, params: Any = None) -> None:
        self.calls.append((sql, len(params or ())))
        self.cursor.execute(sql, params)


def test_insert_stage_loads_in_chunks(rs):
    """2,345 rows go into orders_batch in 3 parameterized INSERTs (1,000 + 1,000 + 345), values exact."""
    stamp = datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=-7)))
    rows = [(f"id-{i:05d}'\\,", 10**12 + i, "TX", "supreme", 1 + i % 100, Decimal(i % 100_000) / 100,
             stamp + timedelta(microseconds=i), stamp + timedelta(seconds=1, microseconds=i)) for i in range(2345)]
    conn = rs.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(BATCH_TABLE_DDL)
            counting = CountingCursor(cur)
            insert_batch(counting, rows)
            assert [n for _, n in counting.calls] == [1000 * 8, 1000 * 8, 345 * 8]
            assert LOAD_CHUNK_ROWS == 1000
            cur.execute("SELECT order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at "
                        "FROM orders_batch ORDER BY order_id")
            loaded = [tuple(r) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    assert loaded == rows
    insert = counting.calls[-1][0]
    [parsed] = sqlglot.parse(insert.replace("%s", "'x'"), read="redshift", error_level=ErrorLevel.RAISE)
    assert parsed.key == "insert" and insert.count("%s") == 345 * 8


def test_insert_stage_rejects_malformed_rows(rs):
    """A row with the wrong number of values raises before anything is sent."""
    sent: list[Any] = []

    class Recorder:
        def execute(self, sql: str, params: Any = None) -> None:
            sent.append(sql)

    with pytest.raises(ValueError, match="8 values"):
        insert_batch(Recorder(), [("only", "three", "values")])
    assert sent == []
    insert_batch(Recorder(), [])
    assert sent == []


# -- run_sync over redshift-connector, INSERT load ---------------------------------------------------------------------

def test_run_sync_moves_exact_values_and_is_idempotent(rs_dbs, rs):
    """psycopg2 OLTP -> redshift-connector warehouse: ids, Decimal prices, instants arrive exactly; a re-run moves 0."""
    orders = tricky_orders()
    store_directly(rs_dbs, orders)
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    try:
        before = datetime.now(UTC)
        result = run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert (result.synced, result.pending, result.batches) == (len(orders), 0, 1)
        assert result.inserted == len(orders)  # redshift-connector reports the merge's row count too
        first = fact_rows(rs)
        expected = sorted((o.order_id, o.customer_id, STATE_OF[o.customer_id], o.type, o.qty, o.retail_price,
                           o.accepted_at) for o in orders)
        assert [r[:7] for r in first] == expected
        assert all(r[8] >= before for r in first)
        # read back through redshift-connector too: aware UTC datetimes, Decimals, strings as written
        with warehouse.cursor() as cur:
            cur.execute("SELECT order_id, retail_price, accepted_at FROM orders_fact ORDER BY order_id")
            via_driver = [tuple(r) for r in cur.fetchall()]
        warehouse.commit()
        assert via_driver == [(r[0], r[5], r[6]) for r in expected]
        assert all(isinstance(p, Decimal) and a.utcoffset() == timedelta(0) for _, p, a in via_driver)
        assert outbox_ids(rs_dbs) == []

        again = run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert (again.synced, again.pending, again.batches, again.warehouse_woken) == (0, 0, 0, False)
        assert fact_rows(rs) == first
        # Nothing to move: the warehouse was not woken, so the idle run is not recorded there.
        assert rs.query("SELECT synced, pending FROM sync_runs ORDER BY finished_at") == [(len(orders), 0)]
    finally:
        oltp.close()
        warehouse.close()


def test_run_sync_in_batches_larger_than_a_chunk(rs_dbs, rs):
    """2,500 orders with batch_rows=1,200 move in 3 batches, each loaded in several INSERT chunks, none doubled."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    store_directly(rs_dbs, [order(f"bulk-{i:05d}", 1 + i % 4, "pepperoni", 1 + i % 7, "11.25",
                               start + timedelta(microseconds=i)) for i in range(2500)])
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    try:
        result = run_sync(oltp, warehouse, batch_rows=1200, backend=RedshiftWarehouse())
    finally:
        oltp.close()
        warehouse.close()
    assert (result.synced, result.batches, result.pending) == (2500, 3, 0)
    assert rs.query("SELECT count(*), count(DISTINCT order_id), sum(qty * retail_price) FROM orders_fact") == [
        (2500, 2500, sum(Decimal("11.25") * (1 + i % 7) for i in range(2500)))]
    assert outbox_ids(rs_dbs) == []


def test_crash_before_warehouse_commit_leaves_nothing(rs_dbs, rs):
    """Merged but not committed: closing the redshift-connector connection keeps no row; a re-run moves all."""
    store_directly(rs_dbs, [order(f"crash-{i}", 1 + i % 4) for i in range(5)])
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    crashing = FailingCommit(warehouse, at=2)  # the stage clear committed; the batch's own commit fails
    with pytest.raises(ConnectionAbortedError):
        run_sync(oltp, crashing, backend=RedshiftWarehouse())
    assert crashing.commits == 2
    oltp.close()
    warehouse.close()
    assert fact_rows(rs) == []
    assert len(outbox_ids(rs_dbs)) == 5
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    try:
        assert run_sync(oltp, warehouse, backend=RedshiftWarehouse()).synced == 5
    finally:
        oltp.close()
        warehouse.close()
    assert len(fact_rows(rs)) == 5


def test_copy_loader_cannot_run_on_redshift_connector(rs_dbs, rs):
    """The PostgreSQL backend's COPY FROM STDIN fails on a redshift-connector cursor: the kind's backend matters."""
    store_directly(rs_dbs, [order("copy-1", 1)])
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    try:
        with pytest.raises(AttributeError):
            run_sync(oltp, warehouse, backend=PostgresWarehouse())
    finally:
        oltp.close()
        warehouse.close()
    assert fact_rows(rs) == []
    assert outbox_ids(rs_dbs) == ["copy-1"]

"""sync: move pending orders from the OLTP outbox into the warehouse fact table.

A run is a loop of bounded batches; each batch:

1. claims up to N outbox rows in the OLTP database (`FOR UPDATE SKIP LOCKED`,
   so concurrent runs take disjoint rows) joined with the order and the
   customer's state;
2. bulk-loads them into a warehouse staging table and inserts the ones the fact
   table lacks (keyed by order_id), stamping loaded_at, and commits the warehouse;
3. deletes the claimed outbox rows and commits the OLTP transaction.

A crash before step 2 commits leaves the outbox untouched; a crash between 2 and
3 leaves rows in the outbox whose orders are already in the warehouse, and the
next run skips them (insert-if-absent keeps the first loaded_at). So no order is
lost or doubled. The outbox, not a watermark, says what is pending: transactions
commit out of sequence order. Each run ends by recording itself in sync_runs.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

STAGE_COLUMNS = ("order_id", "customer_id", "state", "pizza_type", "qty", "retail_price", "accepted_at", "stored_at")

CLAIM_SQL = """
SELECT o.order_id, o.customer_id, c.state, o.pizza_type, o.qty, o.retail_price, o.accepted_at, o.stored_at
FROM outbox ob
JOIN orders o ON o.order_id = ob.order_id
JOIN customers c ON c.customer_id = o.customer_id
ORDER BY ob.accepted_at
LIMIT %s
FOR UPDATE OF ob SKIP LOCKED"""

# Warehouse statements: Redshift and PostgreSQL alike (checked with sqlglot in tests).
STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS orders_stage (
    order_id varchar(64), customer_id bigint, state char(2), pizza_type varchar(32),
    qty integer, retail_price decimal(8, 2), accepted_at timestamptz, stored_at timestamptz)"""
STAGE_CLEAR = "DELETE FROM orders_stage"
MERGE_SQL = """INSERT INTO orders_fact
    (order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at, loaded_at)
SELECT s.order_id, s.customer_id, s.state, s.pizza_type, s.qty, s.retail_price, s.accepted_at, s.stored_at, %s
FROM orders_stage s
LEFT JOIN orders_fact f ON f.order_id = s.order_id
WHERE f.order_id IS NULL"""
RECORD_RUN_SQL = "INSERT INTO sync_runs (started_at, finished_at, synced, pending) VALUES (%s, %s, %s, %s)"


@dataclass
class SyncResult:
    synced: int
    pending: int
    seconds: float
    batches: int
    oldest_pending_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_stage_postgres(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    """Bulk-loads the staging table with COPY (the PostgreSQL stand-in for Redshift's bulk load)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(v.isoformat() if isinstance(v, datetime) else v for v in row)
    buffer.seek(0)
    cur.copy_expert(f"COPY orders_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buffer)


def pending_backlog(oltp: Any, now: datetime) -> tuple[int, float]:
    """(outbox rows, age in seconds of the oldest), read without locking."""
    with oltp.cursor() as cur:
        cur.execute("SELECT count(*), min(accepted_at) FROM outbox")
        count, oldest = cur.fetchone()
    oltp.commit()
    return count, (now - oldest).total_seconds() if oldest else 0.0


def run_sync(
    oltp: Any,
    warehouse: Any,
    *,
    batch_rows: int = 20_000,
    max_seconds: float = 240.0,
    load_stage: Callable[[Any, list[tuple[Any, ...]]], None] = load_stage_postgres,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Runs batches until the outbox is drained or max_seconds is spent; see the module docstring."""
    started, t0 = now(), time.monotonic()
    synced = batches = 0
    while True:
        with oltp.cursor() as cur:
            cur.execute(CLAIM_SQL, (batch_rows,))
            rows = cur.fetchall()
        if not rows:
            oltp.rollback()
            break
        with warehouse.cursor() as cur:
            cur.execute(STAGE_DDL)
            cur.execute(STAGE_CLEAR)
            load_stage(cur, rows)
            cur.execute(MERGE_SQL, (now(),))
        warehouse.commit()
        with oltp.cursor() as cur:
            cur.execute("DELETE FROM outbox WHERE order_id = ANY(%s)", ([r[0] for r in rows],))
        oltp.commit()
        synced += len(rows)
        batches += 1
        if progress:
            progress(len(rows))
        if len(rows) < batch_rows or time.monotonic() - t0 > max_seconds:
            break
    finished = now()
    pending, oldest_age = pending_backlog(oltp, finished)
    with warehouse.cursor() as cur:
        cur.execute(RECORD_RUN_SQL, (started, finished, synced, pending))
    warehouse.commit()
    return SyncResult(synced, pending, round(time.monotonic() - t0, 3), batches, round(oldest_age, 3))

"""sync: move pending orders from the OLTP outbox into the warehouse fact table.

A run is a loop of bounded batches; each batch:

1. claims up to N outbox rows in the OLTP database (`FOR UPDATE SKIP LOCKED`,
   so concurrent runs take disjoint rows) joined with the order and the
   customer's state;
2. loads them into the warehouse's batch table through the warehouse's own bulk
   load (`Warehouse.load_batch`: COPY FROM STDIN on PostgreSQL, gzipped CSV in S3 and
   COPY on Redshift), inserts the ones the fact table lacks (keyed by order_id),
   stamping loaded_at, commits the warehouse, and then lets the warehouse remove
   whatever the load left outside it (`Warehouse.delete_batch_file`: the S3 object);
3. deletes the claimed outbox rows; the OLTP transaction holding those deletes
   commits only after the warehouse has committed every batch it covers.

This module knows the OLTP side (PostgreSQL) and the order of the steps; what differs
between warehouses is behind lambdas.core.warehouse, and the warehouse SQL it runs
(the batch table, the merge, the run record) is schema.py's.

A crash before step 2 commits leaves the outbox untouched; a crash between 2 and
3 leaves rows in the outbox whose orders are already in the warehouse, and the
next run skips them (insert-if-absent keeps the first loaded_at). So no order is
lost or doubled. The outbox, not a watermark, says what is pending: transactions
commit out of sequence order. Each run ends by recording itself in the warehouse's
sync_runs, but for one case, next.

A run that claims nothing does not wake a warehouse that bills by wake
(Capabilities.bills_by_wake: Redshift Serverless bills at least 60 s of its base
capacity for each wake). The sync function hands run_sync a factory rather than a
connection, and run_sync calls it only once a claim has returned rows; so while the
outbox is empty such a warehouse is not connected to, nothing is sent to it (nor on a
connection handed in open), and the run is not recorded there; its result says
`warehouse_woken: false`. Recording the idle run would be a wake of its own: at
rate(5 minutes), 8,640 billed minutes a month for moving nothing. The price is what
sync_runs means on such a warehouse: the runs that moved orders, not every run. So
there the last recorded run (reporting.last_sync, sla_report's last_sync_at) is the
last sync that moved orders, and the CLI calls it that on the aws target; that the
schedule runs at all shows in the backlog metrics each run publishes, idle or not
(metrics.py; the SLA-at-risk alarm treats their absence as a breach), and in the
function's logs. PostgreSQL (the local target) has no such cost: every run, idle or
not, is recorded there as before, and the last recorded run is the last run.

With a backlog (a full batch, and time left) the run pipelines, so that both
databases work at once: while batch k loads into the warehouse, a helper thread
claims batch k+1 on the OLTP connection, deleting those outbox rows as it claims
them (a deleted, uncommitted row stays locked, so other runs skip it, and comes
back if this run dies), and for a warehouse that takes COPY text
(Capabilities.copy_text) it streams them with COPY, straight into the batch table. The
whole run is then one OLTP transaction, committed once after the warehouse has
committed the last batch: the same order of commits as above. Within a run each
claim starts at the previous batch's accepted_at (else it would rescan its own
uncommitted deletes every batch); an older order committed late is left to the
next run, which starts from the beginning of the outbox.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from lambdas.core import defaults
from lambdas.core.schema import BATCH_TABLE_CLEAR, BATCH_TABLE_DDL, MERGE_SQL, RECORD_RUN_SQL
from lambdas.core.warehouse import DEFAULT_KIND, CopyRows, Warehouse, warehouse_class

# OLTP statements (PostgreSQL only).
_TYPED_COLUMNS = "o.order_id, o.customer_id, c.state, o.pizza_type, o.qty, o.retail_price, o.accepted_at, o.stored_at"
# The same columns as PostgreSQL's own text output, for warehouses that take COPY text: psycopg2 then parses
# nothing and the warehouse formats nothing. psycopg2 pins DateStyle to ISO, so a timestamp reads
# "2024-05-01 12:00:00.123456+00" (its offset included, whatever the session's TimeZone).
_TEXT_COLUMNS = ("o.order_id, CAST(o.customer_id AS text), c.state, o.pizza_type, CAST(o.qty AS text), "
                 "CAST(o.retail_price AS text), CAST(o.accepted_at AS text), CAST(o.stored_at AS text)")
_JOINS = """
JOIN orders o ON o.order_id = ob.order_id
JOIN customers c ON c.customer_id = o.customer_id"""


_CLAIM_TEMPLATE = """
SELECT {columns}
FROM outbox ob{joins}
WHERE ob.accepted_at >= %s
ORDER BY ob.accepted_at
LIMIT %s
FOR UPDATE OF ob SKIP LOCKED"""
# The pipelined claim: locks and deletes the rows in one pass (by ctid: no index probes) and reads their
# orders. Every outbox row has its order and every order its customer (foreign keys), so the joins drop none.
# Sorting the narrow claimed rows before the joins (which keep that order) spares a sort of the wide result.
_CLAIM_DELETE_TEMPLATE = """
WITH claimed AS (
    DELETE FROM outbox
    WHERE ctid = ANY(ARRAY(SELECT ctid FROM outbox WHERE accepted_at >= %s
                           ORDER BY accepted_at LIMIT %s FOR UPDATE SKIP LOCKED))
    RETURNING order_id, accepted_at)
SELECT {columns}
FROM (SELECT order_id, accepted_at FROM claimed ORDER BY accepted_at) ob{joins}
ORDER BY ob.accepted_at"""

# Rows as Python values (int, Decimal, aware datetime), for warehouses that format them themselves.
CLAIM_SQL = _CLAIM_TEMPLATE.format(columns=_TYPED_COLUMNS, joins=_JOINS)
CLAIM_DELETE_SQL = _CLAIM_DELETE_TEMPLATE.format(columns=_TYPED_COLUMNS, joins=_JOINS)
# Rows as text, for warehouses that take COPY text (Capabilities.copy_text).
CLAIM_TEXT_SQL = _CLAIM_TEMPLATE.format(columns=_TEXT_COLUMNS, joins=_JOINS)
CLAIM_DELETE_TEXT_SQL = _CLAIM_DELETE_TEMPLATE.format(columns=_TEXT_COLUMNS, joins=_JOINS)
# Deletes a claimed batch by primary key. The ids go through unnest so that PostgreSQL probes the index for
# them: with `= ANY(array)` it scans the whole outbox instead, slow when the backlog is large.
DELETE_CLAIMED_SQL = "DELETE FROM outbox WHERE order_id IN (SELECT unnest(CAST(%s AS varchar[])))"

_NO_LOWER_BOUND = "-infinity"  # the first claim of a run starts at the oldest pending row
FIRST_BATCH_ROWS = 20_000


@dataclass
class SyncResult:
    synced: int  # outbox rows moved (cleared from the outbox)
    pending: int  # outbox rows left that no run is moving (pending_backlog)
    seconds: float
    batches: int
    oldest_pending_seconds: float
    inserted: int = 0  # of the synced, new to the warehouse
    already_present: int = 0  # of the synced, already there (a run that crashed after its warehouse commit)
    # False: the run claimed nothing and its warehouse bills by wake, so it was neither connected to nor
    # sent anything, and the run is not recorded in its sync_runs (see the module docstring)
    warehouse_woken: bool = True
    staged_batches: int = 0  # of the batches, loaded from a file outside the warehouse (Redshift: S3 and COPY)
    being_moved: int = 0  # outbox rows another run still held when this one ended (not counted in pending)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# What the outbox still holds, split into the rows no run is moving (pending) and the rows another run has
# claimed and not yet committed (being moved). A claimed row is locked (FOR UPDATE) or deleted by that run's
# open transaction; either way its xmax names that transaction, and a transaction in progress holds a lock on
# its own id (pg_locks, locktype transactionid; readable by any user). Read from the row headers without taking
# a lock: counting through FOR UPDATE SKIP LOCKED would lock every unclaimed row for the count's length, and a
# run claiming meanwhile would skip them all and stop, as if the outbox were empty. (A snapshot's in-progress
# list would not do: it leaves out transactions that began after its xmax, as a claim running now may have.)
# The oldest is of every row, being moved or not: an order is not in the warehouse until its run commits.
BACKLOG_SQL = """
SELECT count(*) FILTER (WHERE NOT held), count(*) FILTER (WHERE held), min(accepted_at)
FROM (SELECT accepted_at,
             xmax IN (SELECT transactionid FROM pg_locks WHERE locktype = 'transactionid') AS held
      FROM outbox) AS rows"""


@dataclass(frozen=True)
class Backlog:
    pending: int  # outbox rows no run is moving
    being_moved: int  # outbox rows another run (the schedule's, or a second sync-now) has claimed, uncommitted
    oldest_seconds: float  # age of the oldest outbox row, being moved or not; 0 when the outbox is empty


def pending_backlog(oltp: Any, now: datetime) -> Backlog:
    """The outbox backlog as BACKLOG_SQL reads it, without locking."""
    with oltp.cursor() as cur:
        cur.execute(BACKLOG_SQL)
        pending, being_moved, oldest = cur.fetchone()
    oltp.commit()
    return Backlog(int(pending), int(being_moved), (now - oldest).total_seconds() if oldest else 0.0)


def _delete_claimed(oltp: Any, ids: list[str]) -> None:
    with oltp.cursor() as cur:
        cur.execute(DELETE_CLAIMED_SQL, (ids,))


def _claim(oltp: Any, sql: str, after: Any, batch_rows: int) -> list[tuple[Any, ...]]:
    with oltp.cursor() as cur:
        cur.execute(sql, (after, batch_rows))
        return cur.fetchall()


def _claim_copy(oltp: Any, sql: str, after: Any, batch_rows: int) -> CopyRows:
    """The claim streamed with COPY: no Python object per value, and the bytes go on to the batch table as they are.
    COPY takes no parameters, so the claim is bound client-side first (mogrify quotes them as execute does)."""
    with oltp.cursor() as cur:
        query = cur.mogrify(sql, (after, batch_rows)).decode()
        buffer = io.BytesIO()
        cur.copy_expert(f"COPY ({query}) TO STDOUT", buffer)
    return CopyRows(buffer.getvalue())


def _claim_ahead(oltp: Any, sql: str, as_copy: bool, delete_first: list[str] | None, after: Any,
                 batch_rows: int) -> Sequence[tuple[Any, ...]]:
    """Runs on the helper thread while the warehouse loads: deletes the current batch if its claim did not,
    then claims (and deletes) the next one."""
    if delete_first:
        _delete_claimed(oltp, delete_first)
    return _claim_copy(oltp, sql, after, batch_rows) if as_copy else _claim(oltp, sql, after, batch_rows)


def _load_batch(warehouse: Any, backend: Warehouse, rows: Sequence[tuple[Any, ...]],
                loaded_at: datetime) -> tuple[int, bool]:
    """Stages one batch and inserts the orders the fact table lacks, in one warehouse transaction, then
    removes what the load left outside the warehouse; returns how many it inserted, and whether the batch
    was a file outside the warehouse (Redshift: in S3, loaded by COPY)."""
    with warehouse.cursor() as cur:
        cur.execute(BATCH_TABLE_DDL)
        cur.execute(BATCH_TABLE_CLEAR)
        if backend.capabilities.truncate_commits:
            # TRUNCATE has committed on such a warehouse (Redshift). Commit here too, so the load and the
            # merge are one transaction of their own on every warehouse, and the stand-ins behind the test
            # shim run the very transaction boundaries Redshift does.
            warehouse.commit()
        batch_file = backend.load_batch(cur, rows)
        cur.execute(MERGE_SQL, (loaded_at,))
        inserted = cur.rowcount
    warehouse.commit()
    if batch_file is not None:
        # Only now: until the commit, a crash must find the batch again where it was.
        backend.delete_batch_file(batch_file)
    return max(inserted, 0), batch_file is not None


def _opens_lazily(warehouse: Any) -> bool:
    """True for a factory of warehouse connections (env.warehouse), False for a connection itself."""
    return callable(warehouse) and not hasattr(warehouse, "cursor")


def run_sync(
    oltp: Any,
    warehouse: Any | Callable[[], Any],
    *,
    backend: Warehouse | None = None,
    batch_rows: int = defaults.SYNC_BATCH_ROWS,
    max_seconds: float = defaults.SYNC_MAX_SECONDS,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Runs batches from `oltp` (psycopg2) into `warehouse` until the outbox is drained or max_seconds is spent;
    see the module docstring.

    `warehouse` is a connection of `backend`'s kind (by default warehouse.DEFAULT_KIND's: PostgreSQL), or a
    function that returns one, called only when the run first needs the warehouse. Either way, on a warehouse
    that bills by wake a run that claims nothing sends it nothing (and so records no run there)."""
    backend = backend or warehouse_class(DEFAULT_KIND)()
    connection = None if _opens_lazily(warehouse) else warehouse

    def connection_now() -> Any:  # the warehouse connection, opened on first use
        nonlocal connection
        if connection is None:
            connection = warehouse()
        return connection

    started, t0 = now(), time.monotonic()
    synced = batches = inserted = staged_batches = 0
    # Batches start small and grow 1.5x per full batch up to batch_rows: a small backlog still gets
    # several pipelined batches, a large one amortizes each warehouse commit and merge over more rows.
    size = min(batch_rows, FIRST_BATCH_ROWS)
    text = backend.capabilities.copy_text
    claim_sql, claim_delete_sql = (CLAIM_TEXT_SQL, CLAIM_DELETE_TEXT_SQL) if text else (CLAIM_SQL, CLAIM_DELETE_SQL)
    helper: ThreadPoolExecutor | None = None
    try:
        rows: Sequence[tuple[Any, ...]] = _claim(oltp, claim_sql, _NO_LOWER_BOUND, size)
        ids = [r[0] for r in rows]  # this batch was claimed by locking: its outbox rows are still to delete
        while rows:
            upcoming: Future[Sequence[tuple[Any, ...]]] | None = None
            if len(rows) == size and time.monotonic() - t0 <= max_seconds:
                # Rows come in accepted_at order: the last one's is where the next claim starts.
                after = rows.last_value(6) if isinstance(rows, CopyRows) else rows[-1][6]
                helper = helper or ThreadPoolExecutor(max_workers=1, thread_name_prefix="txpipe-sync-oltp")
                size = min(batch_rows, size * 3 // 2)
                upcoming = helper.submit(_claim_ahead, oltp, claim_delete_sql, text, ids, after, size)
                ids = []
            new, was_staged = _load_batch(connection_now(), backend, rows, now())
            inserted += new
            staged_batches += was_staged
            if ids:
                _delete_claimed(oltp, ids)  # the warehouse has committed them
                ids = []
            synced += len(rows)
            batches += 1
            if progress:
                progress(len(rows))
            rows = upcoming.result() if upcoming is not None else []
    finally:
        if helper is not None:
            helper.shutdown(wait=True)  # never return with a statement running on the caller's connection
    if synced:
        with oltp.cursor() as cur:
            # What commits here is outbox deletes for orders the warehouse already holds: if a crash loses
            # this commit, the next run skips those orders again, so it need not wait for its WAL flush.
            cur.execute("SET LOCAL synchronous_commit TO OFF")
        oltp.commit()
    else:
        oltp.rollback()
    finished = now()
    backlog = pending_backlog(oltp, finished)
    wake = batches > 0 or not backend.capabilities.bills_by_wake
    if wake:
        conn = connection_now()
        with conn.cursor() as cur:
            cur.execute(RECORD_RUN_SQL, (started, finished, synced, backlog.pending))
        conn.commit()
    return SyncResult(synced, backlog.pending, round(time.monotonic() - t0, 3), batches,
                      round(backlog.oldest_seconds, 3), inserted=inserted, already_present=synced - inserted,
                      warehouse_woken=wake, staged_batches=staged_batches, being_moved=backlog.being_moved)

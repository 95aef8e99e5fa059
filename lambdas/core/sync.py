"""sync: move pending orders from the OLTP outbox into the warehouse fact table.

A run is a loop of bounded batches; each batch:

1. claims up to N outbox rows in the OLTP database (`FOR UPDATE SKIP LOCKED`,
   so concurrent runs take disjoint rows) joined with the order and the
   customer's state;
2. bulk-loads them into a warehouse staging table and inserts the ones the fact
   table lacks (keyed by order_id), stamping loaded_at, and commits the warehouse;
3. deletes the claimed outbox rows; the OLTP transaction holding those deletes
   commits only after the warehouse has committed every batch it covers.

A crash before step 2 commits leaves the outbox untouched; a crash between 2 and
3 leaves rows in the outbox whose orders are already in the warehouse, and the
next run skips them (insert-if-absent keeps the first loaded_at). So no order is
lost or doubled. The outbox, not a watermark, says what is pending: transactions
commit out of sequence order. Each run ends by recording itself in sync_runs.

With a backlog (a full batch, and time left) the run pipelines, so that both
databases work at once: while batch k loads into the warehouse, a helper thread
claims batch k+1 on the OLTP connection, deleting those outbox rows as it claims
them (a deleted, uncommitted row stays locked, so other runs skip it, and comes
back if this run dies), and for a loader that takes COPY text it streams them
with COPY, straight on to the stage. The whole run is then one OLTP transaction,
committed once after the warehouse has committed the last batch: the same order
of commits as above. Within a run each claim starts at the previous batch's
accepted_at (else it would rescan its own uncommitted deletes every batch); an
older order committed late is left to the next run, which starts from the
beginning of the outbox.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, overload

STAGE_COLUMNS = ("order_id", "customer_id", "state", "pizza_type", "qty", "retail_price", "accepted_at", "stored_at")

# OLTP statements (PostgreSQL only).
_TYPED_COLUMNS = "o.order_id, o.customer_id, c.state, o.pizza_type, o.qty, o.retail_price, o.accepted_at, o.stored_at"
# The same columns as PostgreSQL's own text output, for loaders that write text (COPY): psycopg2 then parses
# nothing and the loader formats nothing. psycopg2 pins DateStyle to ISO, so a timestamp reads
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

# Rows as Python values (int, Decimal, datetime), for loaders that bind parameters (load_stage_redshift).
CLAIM_SQL = _CLAIM_TEMPLATE.format(columns=_TYPED_COLUMNS, joins=_JOINS)
CLAIM_DELETE_SQL = _CLAIM_DELETE_TEMPLATE.format(columns=_TYPED_COLUMNS, joins=_JOINS)
# Rows as text, for loaders that declare `row_format = "text"` (load_stage_postgres).
CLAIM_TEXT_SQL = _CLAIM_TEMPLATE.format(columns=_TEXT_COLUMNS, joins=_JOINS)
CLAIM_DELETE_TEXT_SQL = _CLAIM_DELETE_TEMPLATE.format(columns=_TEXT_COLUMNS, joins=_JOINS)
# Deletes a claimed batch by primary key. The ids go through unnest so that PostgreSQL probes the index for
# them: with `= ANY(array)` it scans the whole outbox instead, slow when the backlog is large.
DELETE_CLAIMED_SQL = "DELETE FROM outbox WHERE order_id IN (SELECT unnest(CAST(%s AS varchar[])))"

# Warehouse statements: Redshift and PostgreSQL alike (checked with sqlglot in tests).
STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS orders_stage (
    order_id varchar(64), customer_id bigint, state char(2), pizza_type varchar(32),
    qty integer, retail_price decimal(8, 2), accepted_at timestamptz, stored_at timestamptz)"""
# TRUNCATE, not DELETE: deleted rows stay in a temporary table (autovacuum never visits one), so with
# DELETE the stage grew by a batch per batch, each load and merge scanned all of it, and the inflated size
# turned the merge into a hash join over the whole fact table. On Redshift TRUNCATE commits the open
# transaction, which here holds only the CREATE above; the batch's load and merge come after it.
STAGE_CLEAR = "TRUNCATE orders_stage"
MERGE_SQL = """INSERT INTO orders_fact
    (order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at, loaded_at)
SELECT s.order_id, s.customer_id, s.state, s.pizza_type, s.qty, s.retail_price, s.accepted_at, s.stored_at, %s
FROM orders_stage s
LEFT JOIN orders_fact f ON f.order_id = s.order_id
WHERE f.order_id IS NULL"""
RECORD_RUN_SQL = "INSERT INTO sync_runs (started_at, finished_at, synced, pending) VALUES (%s, %s, %s, %s)"

_NO_LOWER_BOUND = "-infinity"  # the first claim of a run starts at the oldest pending row
FIRST_BATCH_ROWS = 20_000


@dataclass
class SyncResult:
    synced: int  # outbox rows moved (cleared from the outbox)
    pending: int
    seconds: float
    batches: int
    oldest_pending_seconds: float
    inserted: int = 0  # of the synced, new to the warehouse
    already_present: int = 0  # of the synced, already there (a run that crashed after its warehouse commit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_COPY_SQL = f"COPY orders_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    """One value in COPY's text format: NULL is \\N; backslash, tab, newline and CR are escaped."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.translate(_COPY_ESCAPES)


def copy_text(rows: list[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format, one line each."""
    separators = len(STAGE_COLUMNS) - 1
    lines = []
    for row in rows:
        try:
            line = "\t".join(row)  # the common case: text rows with nothing to escape
        except TypeError:  # typed rows, or a NULL
            line = None
        if line is None or line.count("\t") != separators or "\\" in line or "\n" in line or "\r" in line:
            line = "\t".join(_copy_value(v) for v in row)
        lines.append(line)
    lines.append("")
    return "\n".join(lines)


class CopyRows(Sequence[tuple[str | None, ...]]):
    """A claimed batch as it came out of the OLTP database's COPY: text-format lines, one per row.

    A loader that writes COPY text passes `data` through untouched; any other reads it as a sequence of
    tuples of text (None for NULL), parsed on first use."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._count = data.count(b"\n")
        self._rows: list[tuple[str | None, ...]] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> tuple[str | None, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str | None, ...]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if self._rows is None:
            self._rows = [tuple(None if v == "\\N" else _unescape(v) for v in line.split("\t"))
                          for line in self.data.decode().splitlines()]
        return self._rows[index]

    def last_value(self, column: int) -> str:
        """A field of the last row, read without parsing the others (the keyset bound)."""
        start = self.data.rfind(b"\n", 0, len(self.data) - 1) + 1
        return _unescape(self.data[start:].rstrip(b"\n").split(b"\t")[column].decode())


# The escapes COPY TO writes (it never writes octal or hex ones).
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r", "\\b": "\b", "\\f": "\f", "\\v": "\v"}


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\[\\tnrbfv]", lambda m: _UNESCAPES[m.group(0)], value)


def load_stage_postgres(cur: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk-loads the staging table with COPY (the PostgreSQL stand-in for Redshift's bulk load).

    run_sync hands it text rows or CopyRows (see `row_format`); typed rows work too."""
    data = rows.data if isinstance(rows, CopyRows) else copy_text(rows).encode()
    cur.copy_expert(_COPY_SQL, io.BytesIO(data), size=1 << 20)


# Asks run_sync for rows as PostgreSQL's text output (CLAIM_TEXT_SQL). A loader without it gets typed rows.
load_stage_postgres.row_format = "text"  # type: ignore[attr-defined]


def pending_backlog(oltp: Any, now: datetime) -> tuple[int, float]:
    """(outbox rows, age in seconds of the oldest), read without locking."""
    with oltp.cursor() as cur:
        cur.execute("SELECT count(*), min(accepted_at) FROM outbox")
        count, oldest = cur.fetchone()
    oltp.commit()
    return count, (now - oldest).total_seconds() if oldest else 0.0


def _delete_claimed(oltp: Any, ids: list[str]) -> None:
    with oltp.cursor() as cur:
        cur.execute(DELETE_CLAIMED_SQL, (ids,))


def _claim(oltp: Any, sql: str, after: Any, batch_rows: int) -> list[tuple[Any, ...]]:
    with oltp.cursor() as cur:
        cur.execute(sql, (after, batch_rows))
        return cur.fetchall()


def _claim_copy(oltp: Any, sql: str, after: Any, batch_rows: int) -> CopyRows:
    """The claim streamed with COPY: no Python object per value, and the bytes go on to the stage as they are.
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


def _load_batch(warehouse: Any, load_stage: Callable[[Any, Any], None], rows: Sequence[tuple[Any, ...]],
                loaded_at: datetime) -> int:
    """Stages one batch and inserts the orders the fact table lacks, in one warehouse transaction;
    returns how many it inserted."""
    with warehouse.cursor() as cur:
        cur.execute(STAGE_DDL)
        cur.execute(STAGE_CLEAR)
        load_stage(cur, rows)
        cur.execute(MERGE_SQL, (loaded_at,))
        inserted = cur.rowcount
    warehouse.commit()
    return max(inserted, 0)


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
    synced = batches = inserted = 0
    # Batches start small and grow 1.5x per full batch up to batch_rows: a small backlog still gets
    # several pipelined batches, a large one amortizes each warehouse commit and merge over more rows.
    size = min(batch_rows, FIRST_BATCH_ROWS)
    text = getattr(load_stage, "row_format", "typed") == "text"
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
            inserted += _load_batch(warehouse, load_stage, rows, now())
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
    pending, oldest_age = pending_backlog(oltp, finished)
    with warehouse.cursor() as cur:
        cur.execute(RECORD_RUN_SQL, (started, finished, synced, pending))
    warehouse.commit()
    return SyncResult(synced, pending, round(time.monotonic() - t0, 3), batches, round(oldest_age, 3),
                      inserted=inserted, already_present=synced - inserted)

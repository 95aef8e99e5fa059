"""Historical orders at scale: `txpipe seed --history N` through the real path (OLTP orders and outbox, then the sync).

Order i of a load of `total` orders is a pure function of (seed, i, total, days, end): its order_id is
`hist-<seed>-<i>` (i zero-padded to 12 digits), its customer one of the customers present (by position in
customer_id order), its pizza type, size (price) and quantity drawn with the skew of a real menu, its accepted_at
at (i + a random fraction) / total of the way through the `days` days before `end`: uniform over the days, and in
the order of the ids, as live orders arrive. That order matters: the sync reads the outbox oldest first, and a
heap in random time order makes that index scan one random page per row (a backlog of 1 M history orders
synced at 45,000 rows/s so, and at 87,000 in time order; 10 M at 20,600 and 107,000).

The draws come from one random.Random per block of BLOCK consecutive indexes, seeded by (seed, block), so any
chunking of a load gives the same orders: [0, 1000) equals [0, 400) + [400, 1000), and a re-run of the same load
(same N) continues where a failed one stopped.

A chunk (`load_history_chunk`) is one transaction: its rows go as COPY text into a temporary table, and from there
into orders and the outbox, as the store function writes them. A first load takes plain INSERT .. SELECTs; when
some order of the chunk is there already (a re-run), INSERT .. ON CONFLICT DO NOTHING RETURNING inserts the orders
OLTP lacks and outbox rows for exactly those. An order already there (maybe synced since, and gone from the outbox)
is left alone, so a re-run never doubles an outbox row nor sends an order to the warehouse twice.

Where the time goes (2 vCPUs, PostgreSQL 15, per order): ~7 us each for the orders and the outbox row (a heap
tuple and two index entries), ~6 us each for the two foreign-key checks, ~2 us to generate and COPY the row.
"""

from __future__ import annotations

import io
import random
from bisect import bisect
from datetime import datetime
from itertools import accumulate
from typing import Any

BLOCK = 1024  # indexes per random stream: a chunk that starts mid-block skips at most this many draws
MAX_CHUNK = 500_000  # orders one call may load: its COPY text stays under ~30 MB
MAX_DELAY_MS = 2_000  # stored_at trails accepted_at by up to this (the queue and the store's latency)
# Every order_id a load makes starts so; the API refuses it from clients (lambdas.core.orders), so it tells
# history from live orders. Here, not in orders.py: the functions that read history must not import pydantic.
ORDER_ID_PREFIX = "hist-"

# Relative sales of each type, and its (price, share) per size: some types sell more, a medium sells most.
MENU: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = {
    "pepperoni": (36, (("11.99", 25), ("14.99", 50), ("18.49", 25))),
    "cheese": (24, (("9.99", 25), ("12.99", 50), ("15.99", 25))),
    "supreme": (16, (("13.49", 25), ("16.99", 50), ("20.99", 25))),
    "meat lover": (14, (("14.49", 25), ("17.99", 50), ("21.99", 25))),
    "veggie": (10, (("10.99", 25), ("13.99", 50), ("16.49", 25))),
}
QUANTITIES = ((1, 55), (2, 28), (3, 12), (4, 5))  # most orders are one or two pizzas


def _line_items() -> tuple[list[str], list[float]]:
    """Every (type, qty, price) as its COPY text fragment, with cumulative weights: one draw picks all three."""
    fragments, weights = [], []
    for pizza, (sales, sizes) in MENU.items():
        for price, share in sizes:
            for qty, qty_weight in QUANTITIES:
                fragments.append(f"\t{pizza}\t{qty}\t{price}\t")
                weights.append(sales * share * qty_weight)
    return fragments, list(accumulate(float(w) for w in weights))


LINE_ITEMS, LINE_ITEM_CUMULATIVE = _line_items()

ID_DIGITS = 12  # the index zero-padded: the ids of a chunk are one range of the primary key, in load order
MAX_INDEX = 10**ID_DIGITS - 1
# Every order_id a load makes, as a SQL LIKE pattern ("hist-", the seed, "-", the index's 12 digits): how the SLA
# report knows history from live orders (lambdas.core.reporting.sla_report), on Redshift as on PostgreSQL.
ORDER_ID_LIKE = f"{ORDER_ID_PREFIX}%-{'_' * ID_DIGITS}"
HISTORY_TABLE_DDL = """CREATE TEMP TABLE IF NOT EXISTS history_batch (
    order_id varchar(64), customer_id bigint, pizza_type varchar(32), qty integer, retail_price numeric(8, 2),
    before_end_ms bigint, delay_ms integer) ON COMMIT DELETE ROWS"""
HISTORY_COPY = ("COPY history_batch (order_id, customer_id, pizza_type, qty, retail_price, before_end_ms, delay_ms) "
              "FROM STDIN")
# Is any order of the chunk there already? One short walk of the primary key, as the chunk's ids are a range.
ANY_PRESENT_SQL = "SELECT EXISTS (SELECT 1 FROM orders WHERE order_id BETWEEN %s AND %s)"
# None is (a first load): plain inserts, a third faster than ON CONFLICT's speculative insertion.
NEW_ORDERS_SQL = """INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at, stored_at)
SELECT order_id, customer_id, pizza_type, qty, retail_price,
       CAST(%(end)s AS timestamptz) - before_end_ms * interval '1 millisecond',
       CAST(%(end)s AS timestamptz) - (before_end_ms - delay_ms) * interval '1 millisecond'
FROM history_batch"""
NEW_OUTBOX_SQL = """INSERT INTO outbox (order_id, accepted_at)
SELECT order_id, CAST(%(end)s AS timestamptz) - before_end_ms * interval '1 millisecond'
FROM history_batch"""
# Some are (a re-run, a load overlapping another): the orders OLTP lacks, and outbox rows for exactly those.
MISSING_SQL = """WITH inserted AS (
    INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at, stored_at)
    SELECT order_id, customer_id, pizza_type, qty, retail_price,
           CAST(%(end)s AS timestamptz) - before_end_ms * interval '1 millisecond',
           CAST(%(end)s AS timestamptz) - (before_end_ms - delay_ms) * interval '1 millisecond'
    FROM history_batch
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id, accepted_at)
INSERT INTO outbox (order_id, accepted_at) SELECT order_id, accepted_at FROM inserted"""


def order_id(seed: int, index: int) -> str:
    return f"{ORDER_ID_PREFIX}{seed}-{index:0{ID_DIGITS}d}"


def customer_ids(oltp: Any) -> list[int]:
    with oltp.cursor() as cur:
        cur.execute("SELECT customer_id FROM customers ORDER BY customer_id")
        ids = [row[0] for row in cur.fetchall()]
    oltp.commit()
    if not ids:
        raise ValueError("no customers: run txpipe seed --generate N first")
    return ids


def _block_rng(seed: int, block: int) -> random.Random:
    # A string seed is hashed (sha512), so neighbouring blocks get unrelated streams, the same on every machine.
    return random.Random(f"txpipe-history:{seed}:{block}")  # noqa: S311 - reproducible synthetic data


def write_rows(out: io.BytesIO, *, seed: int, start: int, count: int, total: int, days: int,
               customers: list[str]) -> None:
    """Writes orders [start, start+count) of a load of `total` as COPY text rows of history_batch, a block at a
    time. `customers` are the customer ids as text; times are milliseconds before the load's end (the database
    adds the end)."""
    prefix = f"{ORDER_ID_PREFIX}{seed}-"
    span_ms = days * 86_400_000 - MAX_DELAY_MS  # accepted at least MAX_DELAY_MS before end: stored_at <= end
    n_customers, items, cumulative = len(customers), LINE_ITEMS, LINE_ITEM_CUMULATIVE
    weight_total, last = cumulative[-1], len(cumulative) - 1
    stop = start + count
    for block in range(start // BLOCK, (stop - 1) // BLOCK + 1 if count else 0):
        draw = _block_rng(seed, block).random
        rows = []
        # Each order takes exactly four draws, in this order, so an order's values depend on its index alone.
        for index in range(block * BLOCK, (block + 1) * BLOCK):
            customer, item, before, delay = draw(), draw(), draw(), draw()
            if start <= index < stop:
                rows.append(f"{prefix}{index:0{ID_DIGITS}d}\t{customers[int(customer * n_customers)]}"
                            f"{items[min(bisect(cumulative, item * weight_total), last)]}"
                            f"{MAX_DELAY_MS + int((1 - (index + before) / total) * span_ms)}"
                            f"\t{int(delay * MAX_DELAY_MS)}\n")
        # Bytes, not a StringIO: that holds 4 bytes a character once read, this 1 (the text is ASCII).
        out.write("".join(rows).encode())


def load_history_chunk(oltp: Any, *, seed: int, start: int, count: int, total: int, days: int,
                       end: datetime) -> dict[str, int]:
    """Loads orders [start, start+count) of the load (seed, total, days, end) in one transaction; returns how many
    were new and how many OLTP already held (left as they are)."""
    from psycopg2.errors import UniqueViolation

    _check_arguments(seed=seed, start=start, count=count, total=total, days=days, end=end)
    if not count:
        return {"inserted": 0, "already_present": 0}
    text = io.BytesIO()
    write_rows(text, seed=seed, start=start, count=count, total=total, days=days,
               customers=[str(c) for c in customer_ids(oltp)])
    first_last = (order_id(seed, start), order_id(seed, start + count - 1))
    try:
        inserted = _insert_chunk(oltp, text, end, first_last)
    except UniqueViolation:
        # Another load stored some of these orders after the check: this time keep theirs.
        inserted = _insert_chunk(oltp, text, end, None)
    return {"inserted": inserted, "already_present": count - inserted}


def _insert_chunk(oltp: Any, text: io.BytesIO, end: datetime, first_last: tuple[str, str] | None) -> int:
    """Stages the chunk's rows and inserts the new orders and their outbox rows, in one transaction; with
    first_last, checks first whether the plain inserts can do (no order of the chunk there yet)."""
    text.seek(0)
    try:
        with oltp.cursor() as cur:
            cur.execute(HISTORY_TABLE_DDL)
            cur.copy_expert(HISTORY_COPY, text, size=1 << 16)
            any_present = True
            if first_last is not None:
                cur.execute(ANY_PRESENT_SQL, first_last)
                any_present = cur.fetchone()[0]
            if any_present:
                cur.execute(MISSING_SQL, {"end": end})
            else:
                cur.execute(NEW_ORDERS_SQL, {"end": end})
                cur.execute(NEW_OUTBOX_SQL, {"end": end})
            inserted = cur.rowcount
        oltp.commit()
    except BaseException:
        oltp.rollback()
        raise
    return inserted


def _check_arguments(*, seed: int, start: int, count: int, total: int, days: int, end: datetime) -> None:
    if start < 0 or not 0 <= count <= MAX_CHUNK or not start + count <= total <= MAX_INDEX + 1:
        raise ValueError(f"a chunk is 0 to {MAX_CHUNK} orders with indexes from 0 to the load's total - 1, at most "
                         f"{MAX_INDEX} (got start={start}, count={count}, total={total})")
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    if end.tzinfo is None:
        raise ValueError("end must carry its UTC offset (an ISO timestamp such as 2025-01-01T00:00:00+00:00)")
    if len(order_id(seed, 0)) > 64:
        raise ValueError(f"seed {seed} makes order ids longer than 64 characters")

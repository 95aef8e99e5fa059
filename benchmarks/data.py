"""The data every contender gets, and the checks that nobody wins by dropping rows.

Orders are deterministic (seeded): types by popularity and prices from txpipe's own menu,
customers from the seeded set, explicit order ids. A checksum is the count of rows and the
sum of a 60-bit hash of each row's canonical text, computed the same way in SQL (over any
table, whatever its column types) and in Python (over what a client sent): order-independent,
and any dropped, doubled or altered row changes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg2 import sql

from lambdas.core.schema import BATCH_COLUMNS
from txpipe_cli.synthetic import MENU

# The columns compared, and how each is made canonical whatever type a tool chose for it.
CANONICAL = {
    "order_id": "CAST({} AS text)",
    "customer_id": "CAST(CAST({} AS bigint) AS text)",
    "state": "CAST({} AS text)",
    "pizza_type": "CAST({} AS text)",
    "qty": "CAST(CAST({} AS bigint) AS text)",
    "retail_price": "CAST(CAST({} AS numeric(8, 2)) AS text)",
    # Microseconds since the epoch: exact, and independent of the session's time zone.
    "accepted_at": "CAST(CAST(EXTRACT(EPOCH FROM {}) * 1000000 AS bigint) AS text)",
    "stored_at": "CAST(CAST(EXTRACT(EPOCH FROM {}) * 1000000 AS bigint) AS text)",
}
SYNC_COLUMNS = BATCH_COLUMNS  # what a sync moves: orders_fact's columns without loaded_at
# What a client knows of an order it sent (the server stamps accepted_at and stored_at).
SENT_COLUMNS = ("order_id", "customer_id", "pizza_type", "qty", "retail_price")


@dataclass(frozen=True)
class Checksum:
    rows: int
    digest: int

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": str(self.digest)}


def row_hash(values: list[str]) -> int:
    """The 60-bit hash of one row's canonical text (the SQL side computes the same)."""
    return int(hashlib.md5("|".join(values).encode()).hexdigest()[:15], 16)  # noqa: S324 - a checksum


def checksum_query(table: sql.Composable, columns: tuple[str, ...],
                   where: sql.Composable | None = None) -> sql.Composed:
    parts = [sql.SQL(CANONICAL[c]).format(sql.Identifier(c)) for c in columns]
    text = sql.SQL("concat_ws('|', {})").format(sql.SQL(", ").join(parts))
    digest = sql.SQL("CAST(CAST('x' || substr(md5({}), 1, 15) AS bit(60)) AS bigint)").format(text)
    query = sql.SQL("SELECT count(*), COALESCE(sum({}), 0) FROM {}").format(digest, table)
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    return query


def table_checksum(conn: Any, table: sql.Composable, columns: tuple[str, ...],
                   where: sql.Composable | None = None, params: tuple[Any, ...] = ()) -> Checksum:
    with conn.cursor() as cur:
        cur.execute(checksum_query(table, columns, where), params)
        rows, digest = cur.fetchone()
    return Checksum(int(rows), int(digest))


def orders_checksum(orders: list[dict[str, Any]]) -> Checksum:
    """The checksum of what a client sent, over SENT_COLUMNS."""
    total = 0
    for o in orders:
        price = Decimal(str(o["retail_price"])).quantize(Decimal("0.01"))
        total += row_hash([o["order_id"], str(o["customer_id"]), o["type"], str(o["qty"]), str(price)])
    return Checksum(len(orders), total)


def make_orders(count: int, customers: int, prefix: str, seed: int = 7) -> list[dict[str, Any]]:
    """Orders as a client posts them, with explicit, unique order ids."""
    rng = random.Random(seed)
    names = list(MENU)
    weights = [MENU[name][1] for name in names]
    kinds = rng.choices(names, weights=weights, k=count)
    qtys = rng.choices([1, 2, 3, 4, 5, 10], weights=[40, 30, 15, 8, 5, 2], k=count)
    return [{"order_id": f"{prefix}-{i:08d}", "customer_id": rng.randint(1, customers), "type": kind, "qty": qty,
             "retail_price": float(MENU[kind][0])} for i, (kind, qty) in enumerate(zip(kinds, qtys, strict=True))]


def write_orders(path: Path, orders: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(orders))
    return path


def load_backlog(oltp: Any, count: int, customers: int, prefix: str = "bk", seed: int = 11) -> None:
    """Lays down `count` stored orders, each with its outbox row (as store leaves them), with COPY.

    Accepted over the last hour, a few microseconds apart; in the real pipeline up to 500 orders of one
    request share an accepted_at, so ties are made too (every 100 orders share one)."""
    rng = random.Random(seed)
    names = list(MENU)
    weights = [MENU[name][1] for name in names]
    base = datetime.now(UTC) - timedelta(hours=1)
    step = timedelta(seconds=3000) / max(count, 1)
    chunk = 100_000
    with oltp.cursor() as cur:
        for start in range(0, count, chunk):
            buffer = io.StringIO()
            for i in range(start, min(start + chunk, count)):
                kind = rng.choices(names, weights=weights)[0]
                accepted = base + step * (i - i % 100)
                stored = accepted + timedelta(milliseconds=40)
                buffer.write(f"{prefix}-{i:08d}\t{rng.randint(1, customers)}\t{kind}\t"
                             f"{rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 10))}\t{MENU[kind][0]}\t"
                             f"{accepted.isoformat()}\t{stored.isoformat()}\n")
            buffer.seek(0)
            cur.copy_expert("COPY orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at, "
                            "stored_at) FROM STDIN", buffer)
        cur.execute("INSERT INTO outbox (order_id, accepted_at) SELECT order_id, accepted_at FROM orders")
    oltp.commit()


@dataclass(frozen=True)
class Check:
    """What arrived against what should have: rows and checksum."""

    name: str
    expected: Checksum
    actual: Checksum

    @property
    def ok(self) -> bool:
        return self.expected == self.actual

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "expected_rows": self.expected.rows,
                "actual_rows": self.actual.rows, "expected_digest": str(self.expected.digest),
                "actual_digest": str(self.actual.digest)}

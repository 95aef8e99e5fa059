"""store: write a batch of queued orders into the OLTP database, exactly once.

One transaction per batch writes the orders (INSERT ... ON CONFLICT (order_id) DO
NOTHING, so a redelivered message never doubles a row), an outbox row per new
order, and a rejected_orders row for each order that cannot be kept: an unknown
customer, or an order_id re-sent with different content. Rejections are data,
not failures: the message is consumed and the reason is kept for the operator.

Failures are per message (ReportBatchItemFailures): a malformed message is
reported alone; a database error on the batch is retried one message at a time
so a single poison message cannot hold back the others. Connection-level errors
are transient: the whole batch goes back to the queue.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdas.core.orders import Order, unpack_message

log = logging.getLogger("txpipe.store")

REASON_UNKNOWN_CUSTOMER = "unknown customer_id"
REASON_CONFLICT = "order_id already used for a different order"


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: list[str] = field(default_factory=list)  # SQS message ids to retry

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failures]}


def _fingerprint(reason: str, body: str) -> str:
    return hashlib.sha256(f"{reason}\n{body}".encode()).hexdigest()


def store_orders(conn: Any, orders: list[Order]) -> StoreResult:
    """Writes orders, outbox rows and rejections in the caller's transaction (not committed here)."""
    from psycopg2.extras import execute_values

    result = StoreResult()
    if not orders:
        return result
    rejected: list[tuple[Order, str]] = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT customer_id FROM customers WHERE customer_id = ANY(%s)",
            (sorted({o.customer_id for o in orders}),),
        )
        known = {row[0] for row in cur.fetchall()}
        candidates = [o for o in orders if o.customer_id in known]
        rejected += [(o, REASON_UNKNOWN_CUSTOMER) for o in orders if o.customer_id not in known]

        inserted: set[str] = set()
        if candidates:
            rows = execute_values(
                cur,
                """INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at)
                   VALUES %s ON CONFLICT (order_id) DO NOTHING RETURNING order_id""",
                [(o.order_id, o.customer_id, o.type, o.qty, o.retail_price, o.accepted_at) for o in candidates],
                fetch=True,
            )
            inserted = {row[0] for row in rows}
        # The first occurrence of a new order_id in this batch is the one stored; any other
        # copy (a redelivery, or a client retry) is checked against what the table holds.
        firsts: dict[str, Order] = {}
        others: list[Order] = []
        for o in candidates:
            if o.order_id in inserted and o.order_id not in firsts:
                firsts[o.order_id] = o
            else:
                others.append(o)
        if others:
            cur.execute(
                # Cast to the column's type: against a text[] PostgreSQL cannot use the primary key index.
                "SELECT order_id, customer_id, pizza_type, qty, retail_price FROM orders "
                "WHERE order_id = ANY(CAST(%s AS varchar[]))",
                ([o.order_id for o in others],),
            )
            existing = {row[0]: tuple(row[1:]) for row in cur.fetchall()}
            for o in others:
                if existing.get(o.order_id) == o.content():
                    result.duplicates += 1
                else:
                    rejected.append((o, REASON_CONFLICT))
        if firsts:
            execute_values(
                cur,
                "INSERT INTO outbox (order_id, accepted_at) VALUES %s ON CONFLICT (order_id) DO NOTHING",
                [(o.order_id, o.accepted_at) for o in firsts.values()],
            )
        if rejected:
            execute_values(
                cur,
                """INSERT INTO rejected_orders (fingerprint, order_id, payload, reason) VALUES %s
                   ON CONFLICT (fingerprint) DO NOTHING""",
                [(_fingerprint(reason, o.to_message()), o.order_id, o.to_message(), reason) for o, reason in rejected],
            )
    result.stored = len(firsts)
    result.rejected = len(rejected)
    return result


def process_records(records: list[dict[str, Any]], connection: Callable[[], Any],
                    reset: Callable[[], None]) -> StoreResult:
    """Handles one SQS event's records; `connection()` gives the OLTP connection, `reset()` drops it."""
    import psycopg2

    result = StoreResult()
    parsed: list[tuple[str, list[Order]]] = []
    for record in records:
        try:
            parsed.append((record["messageId"], unpack_message(record["body"])))
        except (KeyError, ValueError) as exc:
            log.error("poison message %s: %s", record.get("messageId"), exc)
            result.failures.append(record.get("messageId", ""))
    if not parsed:
        return result

    for attempt in (1, 2):
        try:
            conn = connection()
            batch = store_orders(conn, [order for _, orders in parsed for order in orders])
            conn.commit()
            break
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            # Transient: nothing was committed. Retry once on a fresh connection (a cached one may
            # predate a server restart), then hand the whole batch back to the queue.
            reset()
            if attempt == 2:
                log.warning("database unavailable, returning %d messages to the queue: %s", len(parsed), exc)
                result.failures += [mid for mid, _ in parsed]
                return result
        except psycopg2.Error as exc:
            conn.rollback()
            log.warning("batch failed (%s); retrying its %d messages one by one", exc, len(parsed))
            return _one_by_one(conn, parsed, result)
    result.stored += batch.stored
    result.duplicates += batch.duplicates
    result.rejected += batch.rejected
    return result


def _one_by_one(conn: Any, parsed: list[tuple[str, list[Order]]], result: StoreResult) -> StoreResult:
    """Each message in its own transaction, so only the messages that fail go back to the queue."""
    import psycopg2

    for message_id, orders in parsed:
        try:
            single = store_orders(conn, orders)
            conn.commit()
        except psycopg2.Error as exc:
            conn.rollback()
            log.error("message %s (%d orders, first %s) failed: %s", message_id, len(orders), orders[0].order_id, exc)
            result.failures.append(message_id)
            continue
        result.stored += single.stored
        result.duplicates += single.duplicates
        result.rejected += single.rejected
    return result

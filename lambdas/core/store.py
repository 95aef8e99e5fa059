"""store: write a batch of queued orders into the OLTP database, exactly once.

One transaction per batch writes the orders (INSERT ... ON CONFLICT (order_id) DO
NOTHING, so a redelivered message never doubles a row), an outbox row per new
order, and a rejected_orders row for each order that cannot be kept: an unknown
customer, or an order_id re-sent with different content. Rejections are data,
not failures: the message is consumed and the reason is kept for the operator.

An order_id's content is the one stored first, for good: a stored order is never
rewritten, so the warehouse and every report built on it agree with the OLTP row.
Batches are stored concurrently, so the first stored need not be the first the API
accepted; each later copy with other content is rejected with a reason naming the
kept order (its accepted_at and content: lambdas.core.rejections.conflict_reason).

Failures are per message (ReportBatchItemFailures) and follow one policy
(lambdas.core.failures): a message that can never be stored (not an order, or
data the database refuses) goes to the dead-letter queue at once with its reason;
a database error on the batch is retried one message at a time so a single such
message cannot hold back the others; a transient error (the database or network
down) hands the messages back to the queue hidden for a growing backoff, so an
outage never spends their way to the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdas.core.failures import Failure, backoff_seconds, classify
from lambdas.core.orders import Order, unpack_message
from lambdas.core.queue import Message, Queue, message_from_record
from lambdas.core.reasons import one_line
from lambdas.core.rejections import DETAIL_SEPARATOR, conflict_reason

log = logging.getLogger("txpipe.store")

REASON_UNKNOWN_CUSTOMER = "unknown customer_id"
REASON_CONFLICT = "order_id already used for a different order"


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    failures: list[str] = field(default_factory=list)  # SQS message ids to retry

    def add(self, other: StoreResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failures]}


def _fingerprint(reason: str, body: str) -> str:
    """One rejected row per message and kind of reason, however often it is redelivered. The kind, not the
    whole reason: a conflict's detail (the kept order) came with issue 15, and a message rejected before it
    must not be rejected a second time when redelivered."""
    kind = reason.split(DETAIL_SEPARATOR, 1)[0]
    return hashlib.sha256(f"{kind}\n{body}".encode()).hexdigest()


# One row per order and kind of reason: a redelivered message is caught by its fingerprint, and the same order
# re-sent (say a rejects file sent again before its customer was loaded: a new message, a new accepted_at) by
# an earlier row of the same order_id, kind and content, accepted_at aside.
REJECT_SQL = """
INSERT INTO rejected_orders (fingerprint, order_id, payload, reason)
SELECT v.fingerprint, v.order_id, v.payload, v.reason
FROM (VALUES %s) AS v (fingerprint, order_id, payload, reason)
WHERE NOT EXISTS (
    SELECT 1 FROM rejected_orders r
    WHERE r.order_id = v.order_id
      AND split_part(r.reason, '; ', 1) = split_part(v.reason, '; ', 1)
      AND (CAST(r.payload AS jsonb) - 'accepted_at') = (CAST(v.payload AS jsonb) - 'accepted_at'))
ON CONFLICT (fingerprint) DO NOTHING"""


def _once(rejected: list[tuple[Order, str]]) -> list[tuple[Order, str]]:
    """The rejections of a batch, each order (id, kind of reason, content) once: two copies sent together."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for order, reason in rejected:
        key = (order.order_id, reason.split(DETAIL_SEPARATOR, 1)[0], order.customer_id, order.type, order.qty,
               order.retail_price)
        if key not in seen:
            seen.add(key)
            kept.append((order, reason))
    return kept


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
                "SELECT order_id, customer_id, pizza_type, qty, retail_price, accepted_at FROM orders "
                "WHERE order_id = ANY(CAST(%s AS varchar[]))",
                ([o.order_id for o in others],),
            )
            # The row as committed by whichever batch stored it first (ON CONFLICT waited for that one).
            existing = {row[0]: tuple(row[1:]) for row in cur.fetchall()}
            for o in others:
                kept = existing.get(o.order_id)
                if kept is not None and kept[:4] == o.content():
                    result.duplicates += 1
                else:
                    rejected.append((o, REASON_CONFLICT if kept is None else conflict_reason(REASON_CONFLICT, *kept)))
        if firsts:
            execute_values(
                cur,
                "INSERT INTO outbox (order_id, accepted_at) VALUES %s ON CONFLICT (order_id) DO NOTHING",
                [(o.order_id, o.accepted_at) for o in firsts.values()],
            )
        if rejected:
            execute_values(cur, REJECT_SQL, [(_fingerprint(reason, o.to_message()), o.order_id, o.to_message(), reason)
                                             for o, reason in _once(rejected)])
    result.stored = len(firsts)
    result.rejected = len(rejected)
    return result


@dataclass
class _Outcome:
    """Where each message of a batch ended: stored, waiting to be retried, or dead-lettered."""

    retry: list[Message] = field(default_factory=list)
    dead: list[tuple[Message, str]] = field(default_factory=list)


def process_records(records: list[dict[str, Any]], connection: Callable[[], Any],
                    reset: Callable[[], None], queue: Queue, rand: Any = random) -> StoreResult:
    """Handles one SQS event's records; `connection()` gives the OLTP connection, `reset()` drops it.

    Failures follow lambdas.core.failures: a message that can never be stored is dead-lettered on
    `queue` with its reason; one that failed for a transient reason is hidden for a growing backoff and
    reported in batchItemFailures. Only a message whose dead-lettering itself failed is retried as is."""
    result, outcome = StoreResult(), _Outcome()
    parsed: list[tuple[Message, list[Order]]] = []
    for record in records:
        message = message_from_record(record)
        try:
            parsed.append((message, unpack_message(message.body)))
        except ValueError as exc:
            outcome.dead.append((message, f"not a valid order message: {exc}"))
    if parsed:
        _store(parsed, connection, reset, result, outcome)
    _settle(queue, outcome, result, rand)
    return result


def _store(parsed: list[tuple[Message, list[Order]]], connection: Callable[[], Any], reset: Callable[[], None],
           result: StoreResult, outcome: _Outcome) -> None:
    for attempt in (1, 2):
        conn = None
        try:
            conn = connection()
            batch = store_orders(conn, [order for _, orders in parsed for order in orders])
            conn.commit()
            result.add(batch)
            return
        # Not only database errors: a secret that cannot be read, or a bug, must not lose or dead-letter
        # orders either. Only the database can call data terminal (classify); the rest waits and is retried.
        except Exception as exc:  # noqa: BLE001
            _rollback(conn, reset)
            if classify(exc) is Failure.TERMINAL:
                log.warning("batch failed (%s); storing its %d messages one by one", one_line(exc), len(parsed))
                _one_by_one(connection, reset, parsed, result, outcome)
                return
            if attempt == 2:  # transient twice: back off
                log.warning("database unavailable, %d messages wait to be retried: %s", len(parsed), one_line(exc))
                outcome.retry += [message for message, _ in parsed]


def _one_by_one(connection: Callable[[], Any], reset: Callable[[], None], parsed: list[tuple[Message, list[Order]]],
                result: StoreResult, outcome: _Outcome) -> None:
    """Each message in its own transaction, so only the messages that fail are retried or dead-lettered."""
    for index, (message, orders) in enumerate(parsed):
        conn = None
        try:
            conn = connection()
            single = store_orders(conn, orders)
            conn.commit()
        except Exception as exc:  # noqa: BLE001 - as in _store
            _rollback(conn, reset)
            if classify(exc) is Failure.TERMINAL:
                log.error("message %s (%d orders, first %s) can never be stored: %s",
                          message.message_id, len(orders), orders[0].order_id, one_line(exc))
                outcome.dead.append((message, f"the database refused it: {one_line(exc)}"))
                continue
            outcome.retry += [m for m, _ in parsed[index:]]  # the database went away mid-way: the rest waits
            return
        result.add(single)


def _settle(queue: Queue, outcome: _Outcome, result: StoreResult, rand: Any) -> None:
    """Dead-letters what can never be stored and delays what waits; what could not be dead-lettered
    is retried like a transient failure (it is never reported as handled unless it is somewhere)."""
    for message, reason in outcome.dead:
        try:
            queue.dead_letter(message, reason)
            result.dead_lettered += 1
        except Exception as exc:  # noqa: BLE001 - the queue is unreachable: the message stays where it is
            log.warning("could not dead-letter message %s (%s); it will be retried", message.message_id, exc)
            outcome.retry.append(message)
    if not outcome.retry:
        return
    result.failures += [m.message_id for m in outcome.retry]
    try:
        queue.change_visibility([(m.receipt_handle, backoff_seconds(m.receive_count, rand)) for m in outcome.retry])
    except Exception as exc:  # noqa: BLE001 - then the queue's own visibility timeout paces the retry
        log.warning("could not delay %d messages: %s", len(outcome.retry), exc)


def _rollback(conn: Any, reset: Callable[[], None]) -> None:
    """Ends the failed transaction; a connection that cannot even roll back is dropped."""
    if conn is not None and not conn.closed:
        with contextlib.suppress(Exception):  # broken: dropped below
            conn.rollback()
            return
    reset()


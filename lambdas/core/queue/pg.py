"""The local orders queue: SQS semantics on a PostgreSQL table (see lambdas.core.queue)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lambdas.core import defaults
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.queue.base import REASON_LIMIT, DeadLetter, Message, QueueError, QueueStats, reason_of_redrive

PG_QUEUE_DDL = [
    """CREATE TABLE IF NOT EXISTS queue_messages (
           id bigserial PRIMARY KEY,
           queue text NOT NULL,
           body text NOT NULL,
           sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
           visible_at timestamptz NOT NULL DEFAULT clock_timestamp(),
           receive_count integer NOT NULL DEFAULT 0,
           receipt uuid
       )""",
    "CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at, id)",
    # The redrive looks for exhausted messages only: without this it scanned every visible one.
    "CREATE INDEX IF NOT EXISTS queue_messages_exhausted ON queue_messages (queue, receive_count, visible_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (receipt)",
    # Why a message is in the dead-letter queue, and since when.
    "ALTER TABLE queue_messages ADD COLUMN IF NOT EXISTS reason text",
    "ALTER TABLE queue_messages ADD COLUMN IF NOT EXISTS dead_lettered_at timestamptz",
]


class PgQueue:
    """SQS semantics on a PostgreSQL table (local target)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        name: str = "orders",
        *,
        visibility_timeout: float = defaults.VISIBILITY_TIMEOUT_SECONDS,
        max_receive_count: int = defaults.MAX_RECEIVE_COUNT,
        poll_interval: float = 0.05,
    ) -> None:
        self._connect = connect
        self._local = threading.local()  # one connection per thread: the local runtime is threaded
        self.name = name
        self.dlq_name = f"{name}-dlq"
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.poll_interval = poll_interval

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, name: str, **kwargs: Any) -> PgQueue:
        return cls(lambda: connect_postgres(endpoint, autocommit=True, application_name="txpipe-queue"),
                   name, **kwargs)

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        """Runs fn(cursor) on the cached connection, reconnecting once if the server dropped it."""
        import psycopg2

        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                conn = self._local.conn = self._connect()
            try:
                with conn.cursor() as cur:
                    return fn(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def create(self) -> None:
        self.run_statements(PG_QUEUE_DDL)

    def run_statements(self, statements: tuple[str, ...] | list[str]) -> None:
        """Fixed DDL or grants (no parameters), in order."""
        def run(cur: Any) -> None:
            for statement in statements:
                cur.execute(statement)

        self._run(run)

    def send_batch(self, bodies: list[str]) -> None:
        if not bodies:
            return
        try:
            # One statement, so a request's orders are enqueued all together or not at all.
            self._run(lambda cur: cur.execute(
                "INSERT INTO queue_messages (queue, body) SELECT %s, unnest(%s::text[])", (self.name, bodies)
            ))
        except Exception as exc:
            raise QueueError(f"could not enqueue {len(bodies)} messages: {exc}") from exc

    def _redrive_exhausted(self, cur: Any) -> None:
        # SQS moves a message to the DLQ when a receive finds it past maxReceiveCount. receive_count is
        # kept (the DLQ is never received from), so the operator sees how often it was tried.
        cur.execute(
            """UPDATE queue_messages SET queue = %s, receipt = NULL, visible_at = clock_timestamp(),
                      dead_lettered_at = clock_timestamp(), reason = %s
               WHERE id IN (SELECT id FROM queue_messages
                            WHERE queue = %s AND visible_at <= clock_timestamp() AND receive_count >= %s
                            FOR UPDATE SKIP LOCKED)""",
            (self.dlq_name, reason_of_redrive(self.max_receive_count), self.name, self.max_receive_count),
        )

    def _claim(self, cur: Any, max_messages: int) -> list[Message]:
        self._redrive_exhausted(cur)
        cur.execute(
            """UPDATE queue_messages m
                  SET visible_at = clock_timestamp() + make_interval(secs => %s),
                      receive_count = m.receive_count + 1,
                      receipt = gen_random_uuid()
                 FROM (SELECT id FROM queue_messages
                        WHERE queue = %s AND visible_at <= clock_timestamp() AND receive_count < %s
                        ORDER BY visible_at, id LIMIT %s
                        FOR UPDATE SKIP LOCKED) picked
                WHERE m.id = picked.id
            RETURNING m.id, m.receipt, m.body, m.receive_count, m.sent_at""",
            # A message that became visible after the redrive above waits for the next receive's.
            (self.visibility_timeout, self.name, self.max_receive_count, max_messages),
        )
        rows = sorted(cur.fetchall())
        return [Message(str(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]

    def receive(self, max_messages: int, wait_seconds: float = 0.0) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        while True:
            messages = self._run(lambda cur: self._claim(cur, max_messages))
            if messages or time.monotonic() >= deadline:
                return messages
            time.sleep(self.poll_interval)

    def delete(self, receipt_handles: list[str]) -> None:
        receipt_handles = [r for r in receipt_handles if _is_receipt(r)]
        if receipt_handles:
            self._run(lambda cur: cur.execute(
                "DELETE FROM queue_messages WHERE receipt = ANY(%s::uuid[])", (receipt_handles,)
            ))

    def change_visibility(self, entries: list[tuple[str, int]]) -> None:
        """Hides each received message (by receipt handle) for the given seconds from now."""
        entries = [(r, t) for r, t in entries if _is_receipt(r)]
        if entries:
            self._run(lambda cur: cur.execute(
                """UPDATE queue_messages m SET visible_at = clock_timestamp() + make_interval(secs => e.seconds)
                   FROM unnest(%s::uuid[], %s::float8[]) AS e(receipt, seconds)
                   WHERE m.receipt = e.receipt AND m.queue = %s""",
                ([r for r, _ in entries], [float(t) for _, t in entries], self.name),
            ))

    def dead_letter(self, message: Message, reason: str) -> None:
        """Moves a received message to the dead-letter queue with its reason. A receipt that is no longer
        current (the message was delivered again meanwhile) moves nothing: that delivery decides."""
        if not _is_receipt(message.receipt_handle):
            return
        self._run(lambda cur: cur.execute(
            """UPDATE queue_messages SET queue = %s, receipt = NULL, visible_at = clock_timestamp(),
                      dead_lettered_at = clock_timestamp(), reason = %s
               WHERE receipt = %s AND queue = %s""",
            (self.dlq_name, reason[:REASON_LIMIT], message.receipt_handle, self.name),
        ))

    def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        def select(cur: Any) -> list[DeadLetter]:
            cur.execute(
                """SELECT id, body, reason, sent_at, dead_lettered_at, receive_count FROM queue_messages
                   WHERE queue = %s ORDER BY sent_at, id LIMIT %s""",
                (self.dlq_name, limit),
            )
            return [DeadLetter(str(r[0]), r[1], r[2] or reason_of_redrive(r[5]), r[3], r[4], r[5])
                    for r in cur.fetchall()]

        return self._run(select)

    def redrive(self) -> dict[str, Any]:
        """Every dead letter back to the orders queue, visible now, with a fresh receive count."""
        def move(cur: Any) -> int:
            cur.execute(
                """UPDATE queue_messages SET queue = %s, receive_count = 0, receipt = NULL, reason = NULL,
                          dead_lettered_at = NULL, visible_at = clock_timestamp()
                   WHERE queue = %s""",
                (self.name, self.dlq_name),
            )
            return cur.rowcount

        return {"moved": self._run(move), "status": "COMPLETED"}

    def purge_dead_letters(self) -> int:
        def purge(cur: Any) -> int:
            cur.execute("DELETE FROM queue_messages WHERE queue = %s", (self.dlq_name,))
            return cur.rowcount

        return self._run(purge)

    def stats(self) -> QueueStats:
        def count(cur: Any) -> QueueStats:
            cur.execute(
                """SELECT count(*) FILTER (WHERE queue = %s AND visible_at <= clock_timestamp()),
                          count(*) FILTER (WHERE queue = %s AND visible_at > clock_timestamp()),
                          count(*) FILTER (WHERE queue = %s)
                   FROM queue_messages""",
                (self.name, self.name, self.dlq_name),
            )
            return QueueStats(*cur.fetchone())

        return self._run(count)


def _is_receipt(handle: str) -> bool:
    """PgQueue receipts are UUIDs; anything else names no message here (and must not break the statement)."""
    try:
        uuid.UUID(handle)
    except (ValueError, TypeError, AttributeError):
        return False
    return True

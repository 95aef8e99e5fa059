"""The orders queue: one interface, two implementations.

- `SqsQueue`: Amazon SQS through boto3 (the AWS target; tested against moto).
- `PgQueue`: a PostgreSQL table with SQS semantics for the local target: batches,
  visibility timeout, receive count, and redrive to a dead-letter queue once a
  message has been received maxReceiveCount times. Claims use
  `FOR UPDATE SKIP LOCKED`, so concurrent pollers never receive the same message.
  moto's SQS is too slow to carry load (it rescans the queue on every send).

`queue_from_env()` picks one from TXPIPE_QUEUE_URL: an SQS URL (https://...) or
`pgqueue://<name>` with the database in TXPIPE_QUEUE_HOST/PORT/DB/SECRET.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from lambdas.core.db import Endpoint, connect_postgres

SQS_BATCH_LIMIT = 10


class QueueError(RuntimeError):
    """Messages could not be sent even after retries."""


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at: datetime


@dataclass(frozen=True)
class QueueStats:
    visible: int
    in_flight: int
    dead_letters: int


class Queue(Protocol):
    def send_batch(self, bodies: list[str]) -> None: ...
    def receive(self, max_messages: int, wait_seconds: float = 0.0) -> list[Message]: ...
    def delete(self, receipt_handles: list[str]) -> None: ...
    def stats(self) -> QueueStats: ...


def sqs_event(messages: list[Message], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for a batch of messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": str(m.receive_count),
                    "SentTimestamp": str(int(m.sent_at.timestamp() * 1000)),
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(m.body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


# --------------------------------------------------------------------------- PostgreSQL

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
]


class PgQueue:
    """SQS semantics on a PostgreSQL table (local target)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        name: str = "orders",
        *,
        visibility_timeout: float = 30.0,
        max_receive_count: int = 5,
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
        def ddl(cur: Any) -> None:
            for statement in PG_QUEUE_DDL:
                cur.execute(statement)

        self._run(ddl)

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
        # SQS moves a message to the DLQ when a receive finds it past maxReceiveCount.
        cur.execute(
            """UPDATE queue_messages SET queue = %s, receive_count = 0, receipt = NULL,
                      visible_at = clock_timestamp()
               WHERE id IN (SELECT id FROM queue_messages
                            WHERE queue = %s AND visible_at <= clock_timestamp() AND receive_count >= %s
                            FOR UPDATE SKIP LOCKED)""",
            (self.dlq_name, self.name, self.max_receive_count),
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
        if receipt_handles:
            self._run(lambda cur: cur.execute(
                "DELETE FROM queue_messages WHERE receipt = ANY(%s::uuid[])", (receipt_handles,)
            ))

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


# --------------------------------------------------------------------------- Amazon SQS


class SqsQueue:
    """Amazon SQS through an injected (or lazily built) boto3 client."""

    def __init__(
        self,
        url: str,
        *,
        dlq_url: str | None = None,
        client: Any = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.dlq_url = dlq_url
        self._client = client
        self.max_attempts = max_attempts
        self._sleep = sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def send_batch(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), SQS_BATCH_LIMIT):
            self._send_chunk(bodies[start:start + SQS_BATCH_LIMIT])

    def _send_chunk(self, bodies: list[str]) -> None:
        pending = {str(i): body for i, body in enumerate(bodies)}
        for attempt in range(1, self.max_attempts + 1):
            entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
            try:
                response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except Exception as exc:  # botocore's ClientError/BotoCoreError: after botocore's own retries
                raise QueueError(f"SQS send_message_batch failed: {exc}") from exc
            failed = response.get("Failed", [])
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
            if not pending:
                return
            fatal = [f for f in failed if f.get("SenderFault")]
            if fatal:
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message', '')}" for f in fatal)
                raise QueueError(f"SQS refused {len(fatal)} messages: {reasons}")
            if attempt < self.max_attempts:
                self._sleep(min(0.1 * 2**attempt, 2.0))
        raise QueueError(f"SQS did not take {len(pending)} messages after {self.max_attempts} attempts")

    def receive(self, max_messages: int, wait_seconds: float = 0.0) -> list[Message]:
        response = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(max_messages, SQS_BATCH_LIMIT)),
            WaitTimeSeconds=int(min(wait_seconds, 20)),
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return [
            Message(
                m["MessageId"], m["ReceiptHandle"], m["Body"],
                int(m["Attributes"]["ApproximateReceiveCount"]),
                datetime.fromtimestamp(int(m["Attributes"]["SentTimestamp"]) / 1000, UTC),
            )
            for m in response.get("Messages", [])
        ]

    def delete(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), SQS_BATCH_LIMIT):
            chunk = receipt_handles[start:start + SQS_BATCH_LIMIT]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
            self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def _depth(self, url: str) -> tuple[int, int]:
        attrs = self.client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def stats(self) -> QueueStats:
        visible, in_flight = self._depth(self.url)
        dead = sum(self._depth(self.dlq_url)) if self.dlq_url else 0
        return QueueStats(visible, in_flight, dead)


def queue_from_env(env: dict[str, str] | None = None) -> Queue:
    env = dict(os.environ) if env is None else env
    url = env.get("TXPIPE_QUEUE_URL", "")
    if url.startswith("pgqueue://"):
        return PgQueue.from_endpoint(
            Endpoint.from_env("queue", env), url.removeprefix("pgqueue://"),
            visibility_timeout=float(env.get("TXPIPE_QUEUE_VISIBILITY_TIMEOUT", "30")),
            max_receive_count=int(env.get("TXPIPE_QUEUE_MAX_RECEIVE_COUNT", "5")),
        )
    if url.startswith(("https://", "http://")):
        return SqsQueue(url, dlq_url=env.get("TXPIPE_DLQ_URL") or None)
    raise RuntimeError("TXPIPE_QUEUE_URL must be an SQS queue URL or pgqueue://<name>")

"""The orders queue: one interface, two implementations.

- `SqsQueue`: Amazon SQS through boto3 (the AWS target; tested against moto).
- `PgQueue`: a PostgreSQL table with SQS semantics for the local target: batches,
  visibility timeout, receive count, and redrive to a dead-letter queue once a
  message has been received maxReceiveCount times. Claims use
  `FOR UPDATE SKIP LOCKED`, so concurrent pollers never receive the same message.
  moto's SQS is too slow to carry load (it rescans the queue on every send).

Both also carry the dead-letter side an operator needs (`txpipe dlq`): the store
dead-letters a message it can never store at once, with its reason
(`dead_letter`); dead letters are listed with their ages and reasons, moved back
to the queue (`redrive`: SQS's StartMessageMoveTask) or purged.

`queue_from_env()` picks one from TXPIPE_QUEUE_URL: an SQS URL (https://...) or
`pgqueue://<name>` with the database in TXPIPE_QUEUE_HOST/PORT/DB/SECRET.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from lambdas.core.db import Endpoint, connect_postgres

log = logging.getLogger("txpipe.queue")

SQS_BATCH_LIMIT = 10
# SQS caps a message's visibility at 12 hours counted from its receive; a function runs at most
# 15 minutes after the receive, so a delay asked for from inside one stays under this.
SQS_MAX_DELAY = 43200 - 900
REASON_LIMIT = 1000  # characters of a dead-letter reason kept (an SQS message attribute, a column)
# Message attributes the store writes on a message it dead-letters (SQS allows 10 per message).
ATTR_REASON = "txpipe-reason"
ATTR_SOURCE_ID = "txpipe-source-message-id"
ATTR_SENT_AT = "txpipe-first-sent-at"
ATTR_RECEIVES = "txpipe-receive-count"


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


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    sent_at: datetime  # when the message first entered the orders queue
    dead_lettered_at: datetime | None  # None where the queue does not say (SQS's own redrive)
    receive_count: int  # deliveries before it was dead-lettered

    def to_dict(self, now: datetime, body: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": self.message_id, "reason": self.reason, "sent_at": self.sent_at.isoformat(),
            "age_seconds": round((now - self.sent_at).total_seconds(), 1),
            "dead_lettered_at": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
            "receive_count": self.receive_count, "bytes": len(self.body.encode()),
        }
        if body:
            data["body"] = self.body
        return data


def reason_of_redrive(receive_count: int) -> str:
    return f"received {receive_count} times without being stored (maxReceiveCount)"


class Queue(Protocol):
    def send_batch(self, bodies: list[str]) -> None: ...
    def receive(self, max_messages: int, wait_seconds: float = 0.0) -> list[Message]: ...
    def delete(self, receipt_handles: list[str]) -> None: ...
    def stats(self) -> QueueStats: ...
    # The consumer's side of failures: hide a message longer; dead-letter one that can never succeed.
    def change_visibility(self, entries: list[tuple[str, int]]) -> None: ...
    def dead_letter(self, message: Message, reason: str) -> None: ...
    # The operator's side (txpipe dlq).
    def list_dead_letters(self, limit: int) -> list[DeadLetter]: ...
    def redrive(self) -> dict[str, Any]: ...
    def purge_dead_letters(self) -> int: ...


def message_from_record(record: dict[str, Any]) -> Message:
    """The queue message behind one record of an SQS event (as sqs_event builds it, or Lambda does)."""
    attributes = record.get("attributes") or {}
    sent_ms = int(attributes.get("SentTimestamp") or 0)
    return Message(record["messageId"], record["receiptHandle"], record["body"],
                   int(attributes.get("ApproximateReceiveCount") or 1), datetime.fromtimestamp(sent_ms / 1000, UTC))


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

    def change_visibility(self, entries: list[tuple[str, int]]) -> None:
        for start in range(0, len(entries), SQS_BATCH_LIMIT):
            chunk = entries[start:start + SQS_BATCH_LIMIT]
            response = self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": min(int(seconds), SQS_MAX_DELAY)}
                for i, (handle, seconds) in enumerate(chunk)])
            for failed in response.get("Failed", []):  # e.g. a receipt that expired: SQS's own timeout applies
                log.warning("could not delay message %s: %s", failed.get("Id"), failed.get("Message"))

    def _require_dlq(self) -> str:
        if not self.dlq_url:
            raise RuntimeError("TXPIPE_DLQ_URL is not set: this function cannot reach the dead-letter queue")
        return self.dlq_url

    def dead_letter(self, message: Message, reason: str) -> None:
        """A copy goes to the dead-letter queue with its reason; the caller then lets the original be
        deleted (the store reports it as handled). A crash in between leaves two copies, never none."""
        def text(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value}

        self.client.send_message(QueueUrl=self._require_dlq(), MessageBody=message.body, MessageAttributes={
            ATTR_REASON: text(reason[:REASON_LIMIT]), ATTR_SOURCE_ID: text(message.message_id),
            ATTR_SENT_AT: text(message.sent_at.isoformat()),
            ATTR_RECEIVES: {"DataType": "Number", "StringValue": str(message.receive_count)}})

    def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead letters. SQS has no browse: messages are received with a short visibility
        timeout and made visible again at once (the DLQ has no redrive, so its receive counts do not matter)."""
        dlq, found, handles = self._require_dlq(), {}, []
        try:
            while len(found) < limit:
                response = self.client.receive_message(
                    QueueUrl=dlq, MaxNumberOfMessages=min(SQS_BATCH_LIMIT, limit - len(found)), WaitTimeSeconds=0,
                    VisibilityTimeout=30, AttributeNames=["All"], MessageAttributeNames=["All"])
                batch = response.get("Messages", [])
                if not batch:
                    break
                for raw in batch:
                    handles.append(raw["ReceiptHandle"])
                    found.setdefault(raw["MessageId"], _dead_letter_from_sqs(raw))
        finally:
            for start in range(0, len(handles), SQS_BATCH_LIMIT):
                self.client.change_message_visibility_batch(QueueUrl=dlq, Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start:start + SQS_BATCH_LIMIT])])
        return sorted(found.values(), key=lambda d: (d.sent_at, d.message_id))

    def redrive(self) -> dict[str, Any]:
        """Starts an SQS message move task from the DLQ back to its source queue (asynchronous)."""
        dlq = self._require_dlq()
        attrs = self.client.get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"])["Attributes"]
        task = self.client.start_message_move_task(SourceArn=attrs["QueueArn"])
        return {"moved": int(attrs["ApproximateNumberOfMessages"]), "status": "RUNNING",
                "task_handle": task["TaskHandle"]}

    def purge_dead_letters(self) -> int:
        dlq = self._require_dlq()
        count = sum(self._depth(dlq))
        self.client.purge_queue(QueueUrl=dlq)
        return count

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


def _dead_letter_from_sqs(raw: dict[str, Any]) -> DeadLetter:
    attributes, custom = raw.get("Attributes", {}), raw.get("MessageAttributes", {})

    def custom_value(name: str) -> str | None:
        return custom.get(name, {}).get("StringValue")

    sent_at_ms = datetime.fromtimestamp(int(attributes.get("SentTimestamp", "0")) / 1000, UTC)
    if custom_value(ATTR_REASON) is not None:  # dead-lettered by the store: the copy was sent then
        first_sent = custom_value(ATTR_SENT_AT)
        return DeadLetter(raw["MessageId"], raw["Body"], custom_value(ATTR_REASON) or "",
                          datetime.fromisoformat(first_sent) if first_sent else sent_at_ms, sent_at_ms,
                          int(custom_value(ATTR_RECEIVES) or 0))
    # Moved by SQS's redrive policy: the original message, SentTimestamp and all.
    receives = int(attributes.get("ApproximateReceiveCount", "1")) - 1  # minus the listing's own receive
    return DeadLetter(raw["MessageId"], raw["Body"], reason_of_redrive(receives), sent_at_ms, None, receives)


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

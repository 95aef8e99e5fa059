"""What both queues share: the message shapes, the interface, and the SQS event Lambda delivers."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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
            "message_id": self.message_id, "reason": clip_reason(self.reason), "sent_at": self.sent_at.isoformat(),
            "age_seconds": round((now - self.sent_at).total_seconds(), 1),
            "dead_lettered_at": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
            "receive_count": self.receive_count, "bytes": len(self.body.encode()),
        }
        if body:
            data["body"] = self.body
        return data


def clip_reason(reason: str) -> str:
    """A reason cut to REASON_LIMIT bytes of UTF-8 (not characters: a reply's size is in bytes)."""
    return reason.encode()[:REASON_LIMIT].decode(errors="ignore")


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

"""The orders queue on AWS: Amazon SQS through boto3 (see lambdas.core.queue)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lambdas.core.queue.base import (
    ATTR_REASON,
    ATTR_RECEIVES,
    ATTR_SENT_AT,
    ATTR_SOURCE_ID,
    REASON_LIMIT,
    SQS_BATCH_LIMIT,
    SQS_MAX_DELAY,
    DeadLetter,
    Message,
    QueueError,
    QueueStats,
    reason_of_redrive,
)

log = logging.getLogger("txpipe.queue")

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

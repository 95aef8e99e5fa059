"""SqsQueue against moto's SQS: batching, receive/delete, stats with a DLQ, retries, sqs_event."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdas.core.queue import Message, QueueError, QueueStats, SqsQueue, sqs_event
from tests.aws.conftest import MAX_RECEIVE_COUNT, QueueUrls
from tests.aws.sqs_helpers import REGION, RecordingClient, bodies_on, depth, fail_all, fail_entries

Fixture = tuple[SqsQueue, Any, QueueUrls]


def _queue(fixture: Fixture, recorder: RecordingClient, sleeps: list[float], **kwargs: Any) -> SqsQueue:
    _, _, urls = fixture
    return SqsQueue(urls.queue, dlq_url=urls.dlq, client=recorder, sleep=sleeps.append, **kwargs)


def _make_visible(client: Any, url: str, messages: list[Message]) -> None:
    for m in messages:
        client.change_message_visibility(QueueUrl=url, ReceiptHandle=m.receipt_handle, VisibilityTimeout=0)


# --------------------------------------------------------------------------- send_batch


def test_send_batch_of_25_goes_out_in_chunks_of_10(orders_queue: Fixture, sleeps: list[float]) -> None:
    """25 bodies are sent as three SendMessageBatch calls (10, 10, 5) and arrive as 25 messages."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client)
    bodies = [f'{{"n":{i}}}' for i in range(25)]

    _queue(orders_queue, recorder, sleeps).send_batch(bodies)

    batches = recorder.calls_to("send_message_batch")
    assert [len(call["Entries"]) for call in batches] == [10, 10, 5]
    assert all(call["QueueUrl"] == urls.queue for call in batches)
    assert [e["MessageBody"] for call in batches for e in call["Entries"]] == bodies
    assert bodies_on(client, urls.queue) == sorted(bodies)
    assert sleeps == []


def test_send_batch_of_nothing_makes_no_call(orders_queue: Fixture, sleeps: list[float]) -> None:
    """An empty list sends no request and leaves the queue empty."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client)

    _queue(orders_queue, recorder, sleeps).send_batch([])

    assert recorder.calls == []
    assert depth(client, urls.queue) == (0, 0)


def test_lazily_built_client_talks_to_the_mock(orders_queue: Fixture) -> None:
    """Without an injected client, SqsQueue builds boto3's own from the (fake) environment."""
    _, client, urls = orders_queue
    queue = SqsQueue(urls.queue, dlq_url=urls.dlq)

    queue.send_batch(["lazy"])

    assert queue.client is queue.client  # built once, then cached
    assert queue.client.meta.region_name == REGION
    assert bodies_on(client, urls.queue) == ["lazy"]


# --------------------------------------------------------------------------- receive / delete


def test_receive_returns_messages_with_receive_count_and_sent_at(orders_queue: Fixture) -> None:
    """receive gives Message objects: id, receipt handle, body, receive count 1, a UTC sent_at near now."""
    queue, _, _ = orders_queue
    before = datetime.now(UTC)
    queue.send_batch(["a", "b", "c"])
    after = datetime.now(UTC)

    messages = queue.receive(10)

    assert all(isinstance(m, Message) for m in messages)
    assert sorted(m.body for m in messages) == ["a", "b", "c"]
    assert len({m.message_id for m in messages}) == 3
    assert len({m.receipt_handle for m in messages}) == 3
    assert [m.receive_count for m in messages] == [1, 1, 1]
    for m in messages:
        assert m.sent_at.tzinfo is not None and m.sent_at.utcoffset() == timedelta(0)
        # SentTimestamp has millisecond resolution
        assert before - timedelta(seconds=1) <= m.sent_at <= after + timedelta(seconds=1)


def test_receive_again_after_visibility_expires_counts_up(orders_queue: Fixture) -> None:
    """A message made visible again is re-received with receive_count 2 and the same message id."""
    queue, client, urls = orders_queue
    queue.send_batch(["again"])
    first = queue.receive(1)
    _make_visible(client, urls.queue, first)

    second = queue.receive(1)

    assert [m.receive_count for m in first] == [1]
    assert [m.receive_count for m in second] == [2]
    assert second[0].message_id == first[0].message_id
    assert second[0].receipt_handle != first[0].receipt_handle


def test_receive_caps_max_messages_at_the_sqs_limit(orders_queue: Fixture, sleeps: list[float]) -> None:
    """Asking for 50 requests 10 (SQS's maximum) and asking for 0 requests 1."""
    queue, client, _ = orders_queue
    recorder = RecordingClient(client)
    wrapped = _queue(orders_queue, recorder, sleeps)
    queue.send_batch([f"m{i}" for i in range(15)])

    many = wrapped.receive(50)
    one = wrapped.receive(0)

    requested = [call["MaxNumberOfMessages"] for call in recorder.calls_to("receive_message")]
    assert requested == [10, 1]
    assert 1 <= len(many) <= 10
    assert len(one) == 1


def test_receive_on_empty_queue_returns_empty_list(orders_queue: Fixture) -> None:
    """An empty queue yields [] without waiting when wait_seconds is 0."""
    queue, _, _ = orders_queue
    assert queue.receive(10, wait_seconds=0) == []


def test_delete_removes_received_messages(orders_queue: Fixture, sleeps: list[float]) -> None:
    """Deleting 12 received messages (two DeleteMessageBatch calls) leaves nothing visible or in flight."""
    queue, client, urls = orders_queue
    recorder = RecordingClient(client)
    wrapped = _queue(orders_queue, recorder, sleeps)
    queue.send_batch([f"d{i}" for i in range(12)])
    received: list[Message] = []
    while batch := queue.receive(10):
        received.extend(batch)
    assert len(received) == 12
    assert queue.stats() == QueueStats(visible=0, in_flight=12, dead_letters=0)

    wrapped.delete([m.receipt_handle for m in received])

    assert [len(c["Entries"]) for c in recorder.calls_to("delete_message_batch")] == [10, 2]
    assert all(r.get("Failed", []) == [] for r in recorder.responses_of("delete_message_batch"))
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=0)
    assert queue.receive(10) == []


def test_delete_only_removes_the_given_handles(orders_queue: Fixture) -> None:
    """Deleting one of two in-flight messages leaves the other in flight, and it can reappear."""
    queue, client, urls = orders_queue
    queue.send_batch(["keep", "drop"])
    received = {m.body: m for m in queue.receive(10)}

    queue.delete([received["drop"].receipt_handle])

    assert queue.stats() == QueueStats(visible=0, in_flight=1, dead_letters=0)
    _make_visible(client, urls.queue, [received["keep"]])
    assert [m.body for m in queue.receive(10)] == ["keep"]


# --------------------------------------------------------------------------- stats


def test_stats_counts_visible_and_in_flight(orders_queue: Fixture) -> None:
    """5 sent and 2 received (not deleted): 3 visible, 2 in flight, no dead letters."""
    queue, _, _ = orders_queue
    queue.send_batch([f"s{i}" for i in range(5)])

    received = queue.receive(2)

    assert len(received) == 2
    assert queue.stats() == QueueStats(visible=3, in_flight=2, dead_letters=0)


def test_stats_counts_dead_letters_after_max_receive_count(orders_queue: Fixture) -> None:
    """A message received maxReceiveCount times is moved to orders-dlq on the next receive."""
    queue, client, urls = orders_queue
    queue.send_batch(["poison"])
    for expected_count in range(1, MAX_RECEIVE_COUNT + 1):
        messages = queue.receive(10)
        assert [m.receive_count for m in messages] == [expected_count]
        _make_visible(client, urls.queue, messages)
    assert queue.stats() == QueueStats(visible=1, in_flight=0, dead_letters=0)

    assert queue.receive(10) == []  # this receive redrives it instead of delivering it

    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=1)
    assert bodies_on(client, urls.dlq) == ["poison"]


def test_stats_without_dlq_url_reports_no_dead_letters(orders_queue: Fixture) -> None:
    """A queue built without dlq_url reports 0 dead letters even when the DLQ holds messages."""
    _, client, urls = orders_queue
    client.send_message(QueueUrl=urls.dlq, MessageBody="dead")

    stats = SqsQueue(urls.queue, client=client).stats()

    assert stats == QueueStats(visible=0, in_flight=0, dead_letters=0)


# --------------------------------------------------------------------------- failures and retries


def test_transiently_failed_entry_is_retried_without_duplicates(orders_queue: Fixture, sleeps: list[float]) -> None:
    """One entry Failed with SenderFault False is re-sent alone; the queue ends with each body exactly once."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client, send_hook=fail_entries({"3"}, sender_fault=False, on_calls={1}))
    bodies = [f"order-{i}" for i in range(12)]

    _queue(orders_queue, recorder, sleeps).send_batch(bodies)

    batches = recorder.calls_to("send_message_batch")
    assert [[e["MessageBody"] for e in call["Entries"]] for call in batches] == [
        bodies[:10], [bodies[3]], bodies[10:],
    ]
    assert Counter(bodies_on(client, urls.queue)) == Counter(bodies)
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 2.0


def test_sender_fault_raises_queue_error_at_once(orders_queue: Fixture, sleeps: list[float]) -> None:
    """An entry Failed with SenderFault True raises QueueError with no retry and no later chunk sent."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client, send_hook=fail_entries({"1"}, sender_fault=True, code="InvalidMessageContents"))
    bodies = [f"order-{i}" for i in range(25)]

    with pytest.raises(QueueError, match="InvalidMessageContents"):
        _queue(orders_queue, recorder, sleeps).send_batch(bodies)

    assert len(recorder.calls_to("send_message_batch")) == 1
    assert sleeps == []
    # SQS batches are not atomic: the other 9 entries of that call were accepted.
    assert bodies_on(client, urls.queue) == sorted(bodies[:1] + bodies[2:10])


def test_persistent_transient_failure_raises_after_max_attempts(orders_queue: Fixture) -> None:
    """A client whose entries always fail transiently is tried max_attempts times, then QueueError."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client, send_hook=fail_all(sender_fault=False, code="ServiceUnavailable"))
    slept: list[float] = []
    queue = SqsQueue(urls.queue, client=recorder, max_attempts=3, sleep=lambda s: slept.append(s))

    with pytest.raises(QueueError, match="after 3 attempts"):
        queue.send_batch(["x", "y"])

    assert len(recorder.calls_to("send_message_batch")) == 3
    assert len(slept) == 2  # between attempts, not after the last one
    assert slept == sorted(slept) and all(0 < s <= 2.0 for s in slept)
    assert depth(client, urls.queue) == (0, 0)


def test_request_level_sqs_error_becomes_queue_error(orders_queue: Fixture, sleeps: list[float]) -> None:
    """A whole-request SQS error (the queue does not exist) surfaces as QueueError, as PgQueue's would."""
    _, client, urls = orders_queue
    missing = urls.queue.replace("/orders", "/no-such-queue")
    queue = SqsQueue(missing, client=client, max_attempts=2, sleep=sleeps.append)

    with pytest.raises(QueueError):
        queue.send_batch(["lost"])


# --------------------------------------------------------------------------- sqs_event


def test_sqs_event_matches_lambda_record_shape(orders_queue: Fixture, sleeps: list[float]) -> None:
    """sqs_event on received messages has Lambda's SQS record keys, with moto's ids and MD5s."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client)
    queue = _queue(orders_queue, recorder, sleeps)
    bodies = ['{"order_id":"o-1","type":"cheese"}', "café ☕ non-ASCII"]
    queue.send_batch(bodies)

    messages = queue.receive(10)
    event = sqs_event(messages, urls.queue_arn, REGION)

    raw = {m["MessageId"]: m for r in recorder.responses_of("receive_message") for m in r["Messages"]}
    records = event["Records"]
    assert len(records) == 2
    assert sorted(r["body"] for r in records) == sorted(bodies)
    for record in records:
        assert {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                "eventSource", "eventSourceARN", "awsRegion"} <= record.keys()
        sqs = raw[record["messageId"]]
        assert record["receiptHandle"] == sqs["ReceiptHandle"]
        assert record["body"] == sqs["Body"]
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["attributes"]["SentTimestamp"] == sqs["Attributes"]["SentTimestamp"]
        assert record["md5OfBody"] == sqs["MD5OfBody"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode("utf-8")).hexdigest()  # noqa: S324
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == urls.queue_arn == "arn:aws:sqs:us-east-1:123456789012:orders"
        assert record["awsRegion"] == REGION


def test_sqs_event_reports_redelivery_count(orders_queue: Fixture) -> None:
    """A redelivered message shows ApproximateReceiveCount '2' in its event record."""
    queue, client, urls = orders_queue
    queue.send_batch(["twice"])
    _make_visible(client, urls.queue, queue.receive(1))

    event = sqs_event(queue.receive(1), urls.queue_arn, REGION)

    assert [r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]] == ["2"]

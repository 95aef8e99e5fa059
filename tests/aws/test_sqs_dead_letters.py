"""SqsQueue's failure side against moto: delaying, dead-lettering with a reason, listing, purging.

moto has no StartMessageMoveTask, so `redrive` is checked with botocore's Stubber, which validates
the request against SQS's API model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.core.queue import REASON_LIMIT, Message, SqsQueue, reason_of_redrive
from tests.aws.conftest import MAX_RECEIVE_COUNT, QueueUrls
from tests.aws.sqs_helpers import REGION

Fixture = tuple[SqsQueue, Any, QueueUrls]


def test_change_visibility_hides_a_message_for_the_given_time(orders_queue: Fixture) -> None:
    """A delayed message is not received again until its new visibility timeout passes; 0 shows it at once."""
    queue, _, _ = orders_queue
    queue.send_batch(["later", "now"])
    got = {m.body: m for m in queue.receive(10)}
    queue.change_visibility([(got["later"].receipt_handle, 600), (got["now"].receipt_handle, 0)])
    assert [m.body for m in queue.receive(10)] == ["now"]


def test_change_visibility_caps_at_the_sqs_maximum(orders_queue: Fixture) -> None:
    """A backoff past 12 hours is sent as 12 hours (SQS refuses more) rather than failing the call."""
    queue, _, _ = orders_queue
    queue.send_batch(["m"])
    [message] = queue.receive(1)
    queue.change_visibility([(message.receipt_handle, 10**6)])
    assert queue.receive(1) == []


def test_dead_letter_sends_a_copy_with_its_reason(orders_queue: Fixture) -> None:
    """The store's dead letter reaches the DLQ with the reason, first-sent time and receive count."""
    queue, _, _ = orders_queue
    queue.send_batch(["not an order"])
    [message] = queue.receive(1)
    queue.dead_letter(message, "not a valid order message: boom " + "x" * 5000)
    [dead] = queue.list_dead_letters(10)
    assert dead.body == "not an order"
    assert dead.reason.startswith("not a valid order message: boom") and len(dead.reason) == REASON_LIMIT
    assert abs((dead.sent_at - message.sent_at).total_seconds()) < 1
    assert dead.receive_count == 1 and dead.dead_lettered_at is not None
    assert queue.stats().dead_letters == 1


def test_listing_leaves_every_dead_letter_in_place(orders_queue: Fixture) -> None:
    """Listing twice shows the same messages: each listing makes them visible again at once."""
    queue, _, _ = orders_queue
    queue.send_batch([f"m{i}" for i in range(13)])
    for message in queue.receive(10) + queue.receive(10):
        queue.dead_letter(message, "r")
    first = queue.list_dead_letters(50)
    second = queue.list_dead_letters(50)
    assert len(first) == 13 and sorted(d.body for d in first) == sorted(d.body for d in second)
    assert len(queue.list_dead_letters(5)) == 5


def test_a_message_moved_by_the_redrive_policy_gets_a_reason(orders_queue: Fixture) -> None:
    """A message SQS moved after maxReceiveCount (no reason of ours) is listed as exhausted."""
    queue, client, urls = orders_queue
    queue.send_batch(["crashes the function"])
    for _ in range(MAX_RECEIVE_COUNT):
        [message] = queue.receive(10)
        client.change_message_visibility(QueueUrl=urls.queue, ReceiptHandle=message.receipt_handle,
                                         VisibilityTimeout=0)
    assert queue.receive(10) == []
    [dead] = queue.list_dead_letters(10)
    assert dead.body == "crashes the function"
    assert dead.reason.startswith("received ") and dead.reason.endswith("(maxReceiveCount)")


def test_purge_empties_the_dead_letter_queue(orders_queue: Fixture) -> None:
    queue, _, _ = orders_queue
    queue.send_batch(["a", "b"])
    for message in queue.receive(10):
        queue.dead_letter(message, "r")
    assert queue.purge_dead_letters() == 2
    assert queue.list_dead_letters(10) == []


def test_without_a_dlq_url_the_failure_side_says_so(orders_queue: Fixture) -> None:
    _, client, urls = orders_queue
    queue = SqsQueue(urls.queue, client=client)
    with pytest.raises(RuntimeError, match="TXPIPE_DLQ_URL"):
        queue.dead_letter(Message("1", "r", "b", 1, datetime.now(UTC)), "why")


def test_redrive_starts_a_message_move_task_from_the_dlq() -> None:
    """redrive asks SQS to move the DLQ's messages back to their source queue (request checked by the model)."""
    client = boto3.client("sqs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    dlq_url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq"
    dlq_arn = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
    with Stubber(client) as stub:
        stub.add_response("get_queue_attributes",
                          {"Attributes": {"QueueArn": dlq_arn, "ApproximateNumberOfMessages": "7"}},
                          {"QueueUrl": dlq_url, "AttributeNames": ["QueueArn", "ApproximateNumberOfMessages"]})
        stub.add_response("start_message_move_task", {"TaskHandle": "task-1"}, {"SourceArn": dlq_arn})
        result = SqsQueue("https://sqs.us-east-1.amazonaws.com/123456789012/orders", dlq_url=dlq_url,
                          client=client).redrive()
        stub.assert_no_pending_responses()
    assert result == {"moved": 7, "status": "RUNNING", "task_handle": "task-1"}


def test_redrive_reason_text() -> None:
    assert reason_of_redrive(5) == "received 5 times without being stored (maxReceiveCount)"

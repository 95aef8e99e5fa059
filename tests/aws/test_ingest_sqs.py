"""The ingest core against SqsQueue on moto: API Gateway REST proxy events in, SQS messages out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lambdas.core.ingest import handle
from lambdas.core.orders import MAX_BODY_BYTES, Order, unpack_message
from lambdas.core.queue import QueueStats, SqsQueue
from tests.aws.conftest import QueueUrls
from tests.aws.sqs_helpers import RecordingClient, drain, fail_all
from txpipe_cli.local.events import api_gateway_event

Fixture = tuple[SqsQueue, Any, QueueUrls]

EVENTS = Path(__file__).resolve().parent.parent / "events"
NOW = datetime(2024, 5, 17, 13, 37, 18, 123456, tzinfo=UTC)
HEADERS = {"Content-Type": "application/json"}

ORDERS = [
    {"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 12.5},
    {"customer_id": 2, "type": "pepperoni", "qty": 2, "retail_price": 16.99},
    {"customer_id": 3, "type": "veggie", "qty": 3, "retail_price": 14},
]


def post(body: bytes | str) -> dict[str, Any]:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return api_gateway_event("POST", "/orders", HEADERS, raw)


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])


def queued_orders(fixture: Fixture) -> list[Order]:
    _, client, urls = fixture
    return [order for m in drain(client, urls.queue) for order in unpack_message(m["Body"])]


def assert_nothing_queued(fixture: Fixture) -> None:
    queue, _, _ = fixture
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead_letters=0)


# --------------------------------------------------------------------------- accepted


def test_three_valid_orders_are_accepted_and_queued(orders_queue: Fixture) -> None:
    """An array of 3 valid orders gives 202 with 3 order_ids, queued packed in one round-tripping message."""
    queue, _, _ = orders_queue

    response = handle(post(json.dumps(ORDERS)), queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    body = body_of(response)
    assert body["accepted"] == 3
    assert len(body["order_ids"]) == len(set(body["order_ids"])) == 3
    assert datetime.fromisoformat(body["accepted_at"]) == NOW
    orders = queued_orders(orders_queue)
    assert len(orders) == 3
    by_id = {o.order_id: o for o in orders}
    assert set(by_id) == set(body["order_ids"])
    for order_id, sent in zip(body["order_ids"], ORDERS, strict=True):
        order = by_id[order_id]
        assert order.content() == (sent["customer_id"], sent["type"], sent["qty"], Decimal(str(sent["retail_price"])))
        assert order.accepted_at == NOW
    assert by_id[body["order_ids"][1]].retail_price == Decimal("16.99")  # exact, never 16.989999...


def test_client_order_id_is_kept(orders_queue: Fixture) -> None:
    """A client-supplied order_id comes back in the response and travels on the queue unchanged."""
    queue, _, _ = orders_queue
    items = [{**ORDERS[0], "order_id": "pos-7:ticket 0042"}, ORDERS[1]]

    response = handle(post(json.dumps(items)), queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    order_ids = body_of(response)["order_ids"]
    assert order_ids[0] == "pos-7:ticket 0042"
    assert order_ids[1] != "pos-7:ticket 0042"
    assert sorted(o.order_id for o in queued_orders(orders_queue)) == sorted(order_ids)


def test_single_order_object_is_accepted(orders_queue: Fixture) -> None:
    """A lone order object (not an array) is accepted as one message."""
    queue, _, _ = orders_queue

    response = handle(post(json.dumps(ORDERS[2])), queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    assert [o.order_id for o in queued_orders(orders_queue)] == body_of(response)["order_ids"]


def test_25_orders_are_packed_into_one_message(orders_queue: Fixture, sleeps: list[float]) -> None:
    """25 orders in one request reach SQS as one message in one call, and all 25 are queued."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client)
    queue = SqsQueue(urls.queue, dlq_url=urls.dlq, client=recorder, sleep=sleeps.append)
    items = [{"customer_id": i + 1, "type": "supreme", "qty": 1, "retail_price": 19.25} for i in range(25)]

    response = handle(post(json.dumps(items)), queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    assert [len(c["Entries"]) for c in recorder.calls_to("send_message_batch")] == [1]
    assert sorted(o.customer_id for o in queued_orders(orders_queue)) == list(range(1, 26))


def test_body_of_exactly_the_size_limit_is_accepted(orders_queue: Fixture) -> None:
    """A body of exactly MAX_BODY_BYTES (an order padded with whitespace) is still accepted."""
    queue, _, _ = orders_queue
    text = json.dumps(ORDERS[0])
    body = text.encode() + b" " * (MAX_BODY_BYTES - len(text))
    assert len(body) == MAX_BODY_BYTES

    response = handle(post(body), queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    assert len(queued_orders(orders_queue)) == 1


def test_recorded_api_gateway_event_is_accepted(orders_queue: Fixture) -> None:
    """A recorded REST proxy event (plain-text body, isBase64Encoded false) is accepted and queued."""
    queue, _, _ = orders_queue
    event = json.loads((EVENTS / "apigw_post_orders.json").read_text())
    assert event["isBase64Encoded"] is False
    sent = json.loads(event["body"])

    response = handle(event, queue, now=lambda: NOW)

    assert response["statusCode"] == 202
    order_ids = body_of(response)["order_ids"]
    assert order_ids[0] == "web-20240517-000123"
    by_id = {o.order_id: o for o in queued_orders(orders_queue)}
    assert set(by_id) == set(order_ids)
    assert by_id["web-20240517-000123"].content() == (1042, "pepperoni", 2, Decimal("16.99"))
    assert by_id[order_ids[1]].content() == (77, "meat lover", 1, Decimal("21.5"))
    assert len(sent) == 2


def test_recorded_event_has_the_shape_the_local_runtime_builds() -> None:
    """The recorded event and api_gateway_event() carry the same top-level and requestContext keys we use."""
    recorded = json.loads((EVENTS / "apigw_post_orders.json").read_text())
    built = api_gateway_event("POST", "/orders", HEADERS, b"[]")

    assert set(built) == set(recorded)
    assert set(built["requestContext"]) <= set(recorded["requestContext"])
    assert recorded["httpMethod"] == built["httpMethod"] == "POST"
    assert recorded["multiValueHeaders"] == {k: [v] for k, v in recorded["headers"].items()}


# --------------------------------------------------------------------------- refused


def test_one_invalid_item_refuses_the_whole_request(orders_queue: Fixture, sleeps: list[float]) -> None:
    """One bad item among 3 gives 400 with per-item errors and puts nothing on the queue."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client)
    queue = SqsQueue(urls.queue, dlq_url=urls.dlq, client=recorder, sleep=sleeps.append)
    items = [ORDERS[0], {**ORDERS[1], "qty": 0, "type": "hawaiian"}, ORDERS[2]]

    response = handle(post(json.dumps(items)), queue, now=lambda: NOW)

    assert response["statusCode"] == 400
    body = body_of(response)
    assert "nothing was enqueued" in body["error"]
    assert {e["index"] for e in body["errors"]} == {1}
    assert {e["field"] for e in body["errors"]} == {"qty", "type"}
    assert all(e["reason"] for e in body["errors"])
    assert recorder.calls_to("send_message_batch") == []
    assert_nothing_queued(orders_queue)


def test_errors_are_reported_for_every_bad_item(orders_queue: Fixture) -> None:
    """Two bad items are both reported, each with its index; still nothing is queued."""
    queue, _, _ = orders_queue
    items = [{**ORDERS[0], "retail_price": "12.50"}, ORDERS[1], "not an order"]

    response = handle(post(json.dumps(items)), queue, now=lambda: NOW)

    assert response["statusCode"] == 400
    errors = body_of(response)["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(0, "retail_price"), (2, None)}
    assert_nothing_queued(orders_queue)


def test_body_over_the_size_limit_is_413(orders_queue: Fixture) -> None:
    """A body one byte over MAX_BODY_BYTES gives 413 and nothing is queued."""
    queue, _, _ = orders_queue
    text = json.dumps(ORDERS[0])
    body = text.encode() + b" " * (MAX_BODY_BYTES + 1 - len(text))

    response = handle(post(body), queue, now=lambda: NOW)

    assert response["statusCode"] == 413
    assert str(MAX_BODY_BYTES) in body_of(response)["errors"][0]["reason"]
    assert_nothing_queued(orders_queue)


def test_base64_body_with_invalid_utf8_is_400(orders_queue: Fixture) -> None:
    """A base64 body (isBase64Encoded true) that decodes to invalid UTF-8 gives 400; nothing queued."""
    queue, _, _ = orders_queue
    raw = b'[{"customer_id": 1, "type": "che\xffse", "qty": 1, "retail_price": 12.5}]'
    event = post(raw)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw

    response = handle(event, queue, now=lambda: NOW)

    assert response["statusCode"] == 400
    assert "UTF-8" in body_of(response)["errors"][0]["reason"]
    assert_nothing_queued(orders_queue)


def test_body_flagged_base64_but_not_base64_is_400(orders_queue: Fixture) -> None:
    """isBase64Encoded true with a body that is not base64 gives 400; nothing queued."""
    queue, _, _ = orders_queue
    event = {**post(b"[]"), "body": json.dumps(ORDERS)}

    response = handle(event, queue, now=lambda: NOW)

    assert response["statusCode"] == 400
    assert "base64" in body_of(response)["errors"][0]["reason"]
    assert_nothing_queued(orders_queue)


def test_non_post_method_is_405(orders_queue: Fixture) -> None:
    """A GET on the resource gives 405 and nothing is queued, even with a valid body."""
    queue, _, _ = orders_queue
    event = api_gateway_event("GET", "/orders", HEADERS, json.dumps(ORDERS).encode())

    response = handle(event, queue, now=lambda: NOW)

    assert response["statusCode"] == 405
    assert_nothing_queued(orders_queue)


# --------------------------------------------------------------------------- queue unavailable


def test_sqs_sender_fault_gives_503_asking_for_retry(orders_queue: Fixture, sleeps: list[float]) -> None:
    """When SQS refuses the entries (SenderFault true) the response is 503 telling the client to retry."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client, send_hook=fail_all(sender_fault=True, code="InvalidMessageContents"))
    queue = SqsQueue(urls.queue, dlq_url=urls.dlq, client=recorder, sleep=sleeps.append)

    response = handle(post(json.dumps(ORDERS)), queue, now=lambda: NOW)

    assert response["statusCode"] == 503
    assert "retry" in body_of(response)["error"]
    assert len(recorder.calls_to("send_message_batch")) == 1
    assert sleeps == []
    assert_nothing_queued(orders_queue)


def test_sqs_persistent_transient_failure_gives_503(orders_queue: Fixture, sleeps: list[float]) -> None:
    """Entries that keep failing transiently exhaust the retries and the response is 503."""
    _, client, urls = orders_queue
    recorder = RecordingClient(client, send_hook=fail_all(sender_fault=False))
    queue = SqsQueue(urls.queue, dlq_url=urls.dlq, client=recorder, max_attempts=2, sleep=sleeps.append)

    response = handle(post(json.dumps(ORDERS)), queue, now=lambda: NOW)

    assert response["statusCode"] == 503
    assert "retry" in body_of(response)["error"]
    assert len(recorder.calls_to("send_message_batch")) == 2
    assert_nothing_queued(orders_queue)


def test_missing_queue_gives_503_not_a_crash(orders_queue: Fixture, sleeps: list[float]) -> None:
    """A request-level SQS error (queue does not exist) yields a 503 response, not an unhandled exception."""
    _, client, urls = orders_queue
    queue = SqsQueue(urls.queue.replace("/orders", "/no-such-queue"), client=client, sleep=sleeps.append)

    response = handle(post(json.dumps(ORDERS)), queue, now=lambda: NOW)

    assert response["statusCode"] == 503
    assert len(body_of(response)["order_ids"]) == len(ORDERS)  # the ids to retry with

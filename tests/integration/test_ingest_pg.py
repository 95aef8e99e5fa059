"""The ingest function on the PostgreSQL queue, and the whole in-process chain ingest -> store -> sync."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from lambdas import ingest, refresh, store, sync
from lambdas.core.orders import unpack_message
from lambdas.core.queue import PgQueue, QueueStats, sqs_event
from lambdas.core.reporting import state_report
from tests.integration.helpers import query, seed_customers
from txpipe_cli.local.events import REGION, LambdaContext, api_gateway_event, queue_arn, scheduled_event
from txpipe_cli.local.target import free_port


@pytest.fixture
def queue(handler_env):
    """A reader on the same PgQueue the ingest function writes to."""
    q = PgQueue.from_endpoint(handler_env.endpoints["queue"], "orders", visibility_timeout=30)
    yield q
    q.close()


def post(body: bytes | str | object, method: str = "POST") -> dict:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return ingest.handler(api_gateway_event(method, "/orders", {"Content-Type": "application/json"}, raw), None)


ORDERS = [
    {"order_id": "req-1", "customer_id": 1, "type": "cheese", "qty": 2, "retail_price": 10.99},
    {"order_id": "req-2", "customer_id": 2, "type": "meat lover", "qty": 1, "retail_price": 17.5},
    {"customer_id": 3, "type": "veggie", "qty": 4, "retail_price": 9},
]


def test_accepted_request_puts_exactly_its_orders_on_the_queue(queue):
    """A 202 response means every order of the request, and nothing else, is on the PgQueue."""
    response = post(ORDERS)
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert body["accepted"] == 3
    assert body["order_ids"][:2] == ["req-1", "req-2"]
    assert len(body["order_ids"][2]) == 36  # a generated UUID
    assert queue.stats() == QueueStats(visible=1, in_flight=0, dead_letters=0)  # one request, one message
    messages = queue.receive(10)
    orders = [order for m in messages for order in unpack_message(m.body)]
    assert [o.order_id for o in orders] == body["order_ids"]
    assert [(o.customer_id, o.type, o.qty, o.retail_price) for o in orders] == [
        (1, "cheese", 2, Decimal("10.99")), (2, "meat lover", 1, Decimal("17.5")), (3, "veggie", 4, Decimal("9"))]
    accepted_at = datetime.fromisoformat(body["accepted_at"])
    assert all(o.accepted_at == accepted_at for o in orders)
    assert all(m.receive_count == 1 for m in messages)


def test_single_order_object_is_accepted(queue):
    """A single JSON object (not an array) is one order on the queue."""
    response = post(ORDERS[0])
    assert response["statusCode"] == 202
    assert [o.order_id for m in queue.receive(10) for o in unpack_message(m.body)] == ["req-1"]


@pytest.mark.parametrize("body", [
    [ORDERS[0], {**ORDERS[1], "qty": 0}],
    [ORDERS[0], {**ORDERS[1], "type": "calzone"}],
    [ORDERS[0], {**ORDERS[1], "order_id": "req-1"}],
    [ORDERS[0], {**ORDERS[1], "retail_price": "17.50"}],
    [],
    "{not json",
], ids=["bad-qty", "bad-type", "duplicate-id", "price-as-string", "empty", "malformed"])
def test_refused_request_enqueues_nothing(queue, handler_env, body):
    """A 400 response leaves the queue empty: one bad item refuses the whole request."""
    response = post(body)
    assert response["statusCode"] == 400
    assert "nothing was enqueued" in json.loads(response["body"])["error"]
    assert queue.stats() == QueueStats(0, 0, 0)
    assert query(handler_env, "queue", "SELECT count(*) FROM queue_messages") == [(0,)]


def test_wrong_method_refused(queue):
    """A GET is refused with 405 and enqueues nothing."""
    assert post(ORDERS, method="GET")["statusCode"] == 405
    assert queue.stats() == QueueStats(0, 0, 0)


def test_queue_unavailable_returns_503(handler_env, monkeypatch):
    """When the queue database cannot be reached, ingest answers 503 and asks the client to retry."""
    monkeypatch.setenv("TXPIPE_QUEUE_PORT", str(free_port()))  # nothing listens there
    response = post(ORDERS)
    assert response["statusCode"] == 503
    assert "retry" in json.loads(response["body"])["error"]


def drain_into_store(queue: PgQueue) -> tuple[int, list[dict]]:
    """The event source mapping: receive batches, invoke store, delete all but the reported failures."""
    handled, responses = 0, []
    while messages := queue.receive(10):
        response = store.handler(sqs_event(messages, queue_arn("orders"), REGION), LambdaContext("store", 30))
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        queue.delete([m.receipt_handle for m in messages if m.message_id not in failed])
        handled += len(messages)
    return handled, responses


def test_full_chain_ingest_store_sync(queue, handler_env):
    """ingest -> PgQueue -> store -> delete -> sync: every accepted order ends up in orders_fact with its state."""
    seed_customers(handler_env, [[1, "TX", "A"], [2, "CA", "B"], [3, "TX", "C"]])
    order_ids = []
    for _ in range(3):
        response = post(ORDERS[2:] + [{**o, "order_id": f"{o['order_id']}-{len(order_ids)}"} for o in ORDERS[:2]])
        assert response["statusCode"] == 202
        order_ids += json.loads(response["body"])["order_ids"]
    assert len(set(order_ids)) == 9

    handled, responses = drain_into_store(queue)
    assert handled == 3  # three requests, each packed in one message
    assert all(r == {"batchItemFailures": []} for r in responses)
    assert queue.stats() == QueueStats(0, 0, 0)
    assert query(handler_env, "oltp", "SELECT count(*) FROM outbox") == [(9,)]

    result = sync.handler(scheduled_event("sync"), LambdaContext("sync", 60))
    assert (result["synced"], result["pending"]) == (9, 0)
    facts = query(handler_env, "warehouse", "SELECT order_id, state, accepted_at, loaded_at FROM orders_fact")
    assert sorted(r[0] for r in facts) == sorted(order_ids)
    states = {r[0]: r[1] for r in facts}
    assert {states[i] for i in order_ids if i.startswith("req-2")} == {"CA"}
    assert all(loaded >= accepted for _, _, accepted, loaded in facts)
    assert query(handler_env, "oltp", "SELECT count(*) FROM outbox") == [(0,)]

    assert refresh.handler(scheduled_event("refresh"), None)["refreshed"]
    conn = handler_env.connect("warehouse")
    try:
        tx = state_report(conn, "TX")
    finally:
        conn.close()
    # per request: customer 3 veggie 4 x 9 and customer 1 cheese 2 x 10.99; three requests
    assert (tx["total_pizzas"], tx["gross_sales"], tx["unique_customers"]) == (18, 173.94, 2)


def test_chain_with_client_retry_stores_once(queue, handler_env):
    """A client retry with the same order_ids enqueues copies, but the store keeps one order each and sync one row."""
    seed_customers(handler_env, [[1, "TX", "A"], [2, "CA", "B"], [3, "TX", "C"]])
    request = ORDERS[:2]
    assert post(request)["statusCode"] == 202
    assert post(request)["statusCode"] == 202  # the client did not see the first 202 and retried
    assert queue.stats().visible == 2  # one message per request
    handled, responses = drain_into_store(queue)
    assert handled == 2 and all(r == {"batchItemFailures": []} for r in responses)
    assert query(handler_env, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [("req-1",), ("req-2",)]
    assert query(handler_env, "oltp", "SELECT count(*) FROM rejected_orders") == [(0,)]
    assert sync.handler(scheduled_event("sync"), None)["synced"] == 2
    assert query(handler_env, "warehouse", "SELECT count(*) FROM orders_fact") == [(2,)]

"""The store function's failure policy against a real OLTP database and the real orders queue.

Terminal (a body that can never be stored) -> the dead-letter queue at once, with its reason;
transient (the database away) -> back to the queue, hidden for a growing backoff, never dead-lettered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from psycopg2 import sql

from lambdas import store
from lambdas.core import failures
from lambdas.core.orders import pack_messages
from tests.conftest import load_event
from tests.integration.helpers import (
    counts,
    dead_letters,
    delivered,
    message_ids,
    order,
    query,
    scalar,
    seed_customers,
)

NO_FAILURES = {"batchItemFailures": []}


@pytest.fixture
def customers(handler_env):
    seed_customers(handler_env, [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"]])
    return handler_env


def hidden_for(databases, evt, index: int) -> float:
    """Seconds until the record's message becomes visible again."""
    row_id = int(evt["Records"][index]["messageId"])
    return float(scalar(databases, "queue", "SELECT EXTRACT(EPOCH FROM visible_at - clock_timestamp()) "
                                            "FROM queue_messages WHERE id = %s", (row_id,)))


@pytest.mark.parametrize("bad_body", [
    "this is not json",
    "[1, 2, 3]",
    '{"order_id": "x", "customer_id": 1, "type": "cheese", "qty": 1}',
    '{"order_id": "x", "customer_id": 1, "type": "calzone", "qty": 1, "retail_price": "1.00", '
    '"accepted_at": "2024-01-01T00:00:00+00:00"}',
    '{"order_id": "x", "customer_id": 1, "type": "cheese", "qty": 1, "retail_price": "1.00", '
    '"accepted_at": "2024-01-01T00:00:00"}',
    '{"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": "1.00", '
    '"accepted_at": "2024-01-01T00:00:00+00:00"}',
], ids=["not-json", "not-object", "no-price-no-time", "bad-type", "naive-time", "no-order-id"])
def test_malformed_message_is_dead_lettered_at_once_with_its_reason(customers, bad_body):
    """A malformed body goes to the DLQ on its first delivery, with a reason; the rest of the batch is stored."""
    evt, queue = delivered(customers, order("ok-1", 1), bad_body, order("ok-2", 2))
    assert store.handler(evt, None) == NO_FAILURES  # handled: the event source mapping deletes it from the queue
    assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [("ok-1",), ("ok-2",)]
    [(body, reason)] = dead_letters(queue)
    assert body == bad_body and reason.startswith("not a valid order message")
    assert queue.list_dead_letters(10)[0].receive_count == 1


def test_only_malformed_messages_all_dead_lettered(customers):
    """A batch of only malformed messages writes nothing and dead-letters every one."""
    evt, queue = delivered(customers, "{", "null")
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == {"orders": 0, "outbox": 0, "rejected_orders": 0}
    assert [body for body, _ in dead_letters(queue)] == ["null", "{"]


def test_store_event_file(customers):
    """The stored SQS event file (two orders and one poison message), delivered through the real queue."""
    records = load_event("sqs_store_mixed_batch.json")["Records"]
    evt, queue = delivered(customers, *[r["body"] for r in records])
    assert store.handler(evt, None) == NO_FAILURES
    rows = query(customers, "oltp", "SELECT order_id, customer_id, pizza_type, qty, retail_price, accepted_at "
                                    "FROM orders ORDER BY order_id")
    accepted = datetime(2024, 3, 1, 18, 30, tzinfo=UTC)
    assert rows == [
        ("file-order-1", 1, "pepperoni", 2, Decimal("14.99"), accepted),
        ("file-order-2", 3, "veggie", 1, Decimal("11.50"), accepted + timedelta(seconds=1)),
    ]
    assert [body for body, _ in dead_letters(queue)] == [records[1]["body"]]


def _trigger(databases, errcode: str) -> None:
    admin = databases.connect("oltp", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("""CREATE FUNCTION refuse_explode() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN IF NEW.order_id = 'explode' THEN
                         RAISE EXCEPTION 'refused %', NEW.order_id USING ERRCODE = {errcode};
                       END IF; RETURN NEW; END $$""").format(errcode=sql.Literal(errcode)))
        cur.execute("CREATE TRIGGER refuse_explode BEFORE INSERT ON orders "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_explode()")
    admin.close()


def _drop_trigger(databases) -> None:
    admin = databases.connect("oltp", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("DROP TRIGGER IF EXISTS refuse_explode ON orders")
        cur.execute("DROP FUNCTION IF EXISTS refuse_explode()")
    admin.close()


def test_data_the_database_refuses_is_dead_lettered_alone(customers):
    """A constraint violation on one order: one by one, only its message is dead-lettered, with the reason."""
    _trigger(customers, "check_violation")
    try:
        evt, queue = delivered(customers, order("fine-1", 1), order("explode", 1), order("fine-2", 2))
        assert store.handler(evt, None) == NO_FAILURES
        assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [("fine-1",), ("fine-2",)]
        [(body, reason)] = dead_letters(queue)
        assert '"explode"' in body
        assert reason == "the database refused it: refused explode"
    finally:
        _drop_trigger(customers)


def test_an_error_that_may_pass_is_retried_not_dead_lettered(customers):
    """An error the database does not pin on the data (here a lock timeout) backs the message off instead."""
    _trigger(customers, "lock_not_available")
    try:
        evt, queue = delivered(customers, order("fine-1", 1), order("explode", 1))
        assert store.handler(evt, None) == {"batchItemFailures": message_ids(evt, 0, 1)}
        assert dead_letters(queue) == []
        assert counts(customers)["orders"] == 0
        assert 0 < hidden_for(customers, evt, 1) <= failures.BACKOFF_BASE_SECONDS
    finally:
        _drop_trigger(customers)
    assert store.handler(evt, None) == NO_FAILURES  # the cause is gone: the same delivery stores both
    assert counts(customers)["orders"] == 2


def test_unreachable_database_backs_off_and_never_dead_letters(customers, monkeypatch):
    """OLTP down: the orders wait hidden for a backoff that grows with each receive; the poison is still
    dead-lettered (the queue is up); once the database is back every order is stored once."""
    from lambdas.core import db
    from txpipe_cli.local.target import free_port

    db.drop_cached("oltp")
    monkeypatch.setenv("TXPIPE_OLTP_PORT", str(free_port()))  # nothing listens there
    evt, queue = delivered(customers, order("a", 1), "not json", order("b", 2))
    assert store.handler(evt, None) == {"batchItemFailures": message_ids(evt, 0, 2)}
    assert [body for body, _ in dead_letters(queue)] == ["not json"]
    assert 0 < hidden_for(customers, evt, 0) <= failures.BACKOFF_BASE_SECONDS

    later = json.loads(json.dumps(evt))
    for record in later["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "7"
    assert store.handler(later, None)["batchItemFailures"] == message_ids(evt, 0, 2)
    assert 0.75 * 5 * 2**6 - 1 <= hidden_for(customers, evt, 0) <= 5 * 2**6
    assert queue.stats().dead_letters == 1

    monkeypatch.setenv("TXPIPE_OLTP_PORT", str(customers.endpoints["oltp"].port))
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == {"orders": 2, "outbox": 2, "rejected_orders": 0}


def test_unreachable_queue_keeps_the_poison_for_a_retry(customers, monkeypatch):
    """If the dead-letter queue cannot be reached, the poison is reported as failed, not silently dropped."""
    from lambdas.core import env

    evt, queue = delivered(customers, order("a", 1), "not json")
    env.reset_queues()
    monkeypatch.setenv("TXPIPE_QUEUE_PORT", "1")  # the store's own queue connection fails
    assert store.handler(evt, None) == {"batchItemFailures": message_ids(evt, 1)}
    assert counts(customers)["orders"] == 1
    assert queue.stats().dead_letters == 0


def test_packed_message_with_a_bad_order_is_dead_lettered_alone(customers):
    """Packed messages store all their orders; a packed message with a bad order is dead-lettered whole."""
    good = pack_messages([order("pk-1", 1), order("pk-2", 2, "veggie", 3, "13.99")])[0]
    other = pack_messages([order("pk-3", 1)])[0]
    bad = good.replace('"qty":1', '"qty":0', 1).replace("pk-1", "pk-bad")
    evt, queue = delivered(customers, good, bad, other)
    assert store.handler(evt, None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [
        ("pk-1",), ("pk-2",), ("pk-3",)]
    [(body, reason)] = dead_letters(queue)
    assert body == bad and "qty" in reason

"""The store function against a real OLTP database: exactly-once orders, rejections, partial failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lambdas import store
from lambdas.core.orders import pack_messages
from lambdas.core.store import REASON_CONFLICT, REASON_UNKNOWN_CUSTOMER
from tests.conftest import load_event
from tests.integration.helpers import counts, event, message, order, query, seed_customers

NO_FAILURES = {"batchItemFailures": []}


@pytest.fixture
def customers(handler_env):
    seed_customers(handler_env, [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"]])
    return handler_env


def test_batch_stores_orders_and_one_outbox_row_each(customers):
    """A batch of valid orders is stored with one outbox row per order and no batch item failures."""
    accepted = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    orders = [order(f"o-{i}", customer_id=1 + i % 3, pizza="veggie", qty=i + 1, price="12.34", accepted_at=accepted)
              for i in range(5)]
    assert store.handler(event(*orders), None) == NO_FAILURES
    rows = query(customers, "oltp", "SELECT order_id, customer_id, pizza_type, qty, retail_price, accepted_at "
                                    "FROM orders ORDER BY order_id")
    assert rows == [(o.order_id, o.customer_id, "veggie", o.qty, Decimal("12.34"), accepted) for o in orders]
    outbox = query(customers, "oltp", "SELECT order_id, accepted_at FROM outbox ORDER BY order_id")
    assert outbox == [(o.order_id, accepted) for o in orders]
    assert counts(customers)["rejected_orders"] == 0


def test_redelivered_event_stores_nothing_new(customers):
    """Redelivering the same SQS event is not a failure and leaves orders and outbox unchanged."""
    evt = event(order("a", 1), order("b", 2, "pepperoni", 3, "9.99"))
    assert store.handler(evt, None) == NO_FAILURES
    before = counts(customers)
    stored_at = query(customers, "oltp", "SELECT order_id, stored_at FROM orders ORDER BY order_id")
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == before == {"orders": 2, "outbox": 2, "rejected_orders": 0}
    assert query(customers, "oltp", "SELECT order_id, stored_at FROM orders ORDER BY order_id") == stored_at


def test_redelivery_after_sync_does_not_recreate_outbox_row(customers):
    """A message redelivered after its outbox row was consumed does not put the order back in the outbox."""
    o = order("synced-1", 1)
    assert store.handler(event(o), None) == NO_FAILURES
    conn = customers.connect("oltp", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM outbox")
    conn.close()
    assert store.handler(event(o), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 0, "rejected_orders": 0}


def test_same_order_id_with_different_content_is_rejected(customers):
    """An order_id re-sent with other content goes to rejected_orders and the original row is kept unchanged."""
    original = order("dup", 1, "cheese", 2, "10.00")
    assert store.handler(event(original), None) == NO_FAILURES
    changed = order("dup", 1, "cheese", 5, "10.00")
    assert store.handler(event(changed), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT customer_id, pizza_type, qty, retail_price FROM orders") == [
        (1, "cheese", 2, Decimal("10.00"))]
    rejected = query(customers, "oltp", "SELECT order_id, reason, payload FROM rejected_orders")
    assert rejected == [("dup", REASON_CONFLICT, changed.to_message())]
    assert REASON_CONFLICT == "order_id already used for a different order"
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 1}


def test_same_order_with_equivalent_price_text_is_a_duplicate(customers):
    """A re-sent order whose price is written differently but equal ("10" vs "10.00") is a duplicate, not a conflict."""
    accepted = datetime.now(UTC)
    original = order("p-1", 1, "supreme", 1, "10.00", accepted)
    assert store.handler(event(original), None) == NO_FAILURES
    body = json.loads(original.to_message())
    body["retail_price"] = "10"
    assert store.handler(event(json.dumps(body)), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 0}


def test_unknown_customer_is_rejected_not_failed(customers):
    """An order for an unknown customer_id is kept in rejected_orders, not stored and not reported as a failure."""
    good, unknown = order("g", 1), order("u", 999)
    assert store.handler(event(good, unknown), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT order_id FROM orders") == [("g",)]
    assert query(customers, "oltp", "SELECT order_id FROM outbox") == [("g",)]
    assert query(customers, "oltp", "SELECT order_id, reason, payload FROM rejected_orders") == [
        ("u", REASON_UNKNOWN_CUSTOMER, unknown.to_message())]
    assert REASON_UNKNOWN_CUSTOMER == "unknown customer_id"


def test_redelivered_rejected_message_is_rejected_once(customers):
    """Redelivering a rejected message (unknown customer or conflict) does not add a second rejected row."""
    assert store.handler(event(order("c", 1, qty=1)), None) == NO_FAILURES
    evt = event(order("u", 999), order("c", 1, qty=9))
    assert store.handler(evt, None) == NO_FAILURES
    assert store.handler(evt, None) == NO_FAILURES
    assert sorted(query(customers, "oltp", "SELECT order_id, reason FROM rejected_orders")) == [
        ("c", REASON_CONFLICT), ("u", REASON_UNKNOWN_CUSTOMER)]


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
def test_malformed_message_reported_alone(customers, bad_body):
    """A malformed body is reported in batchItemFailures by its messageId; the rest of the batch is stored."""
    bad = message(bad_body, message_id="poison-1")
    response = store.handler(event(order("ok-1", 1), bad, order("ok-2", 2)), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [("ok-1",), ("ok-2",)]
    assert counts(customers) == {"orders": 2, "outbox": 2, "rejected_orders": 0}


def test_only_malformed_messages_all_reported(customers):
    """A batch of only malformed messages reports every one of them and writes nothing."""
    response = store.handler(event(message("{", "m1"), message("null", "m2")), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert counts(customers) == {"orders": 0, "outbox": 0, "rejected_orders": 0}


def test_two_copies_of_same_order_in_one_batch_stored_once(customers):
    """Two copies of the same order in one batch are stored once, with one outbox row and no failure."""
    o = order("twice", 2, "meat lover", 4, "15.50")
    assert store.handler(event(o, o), None) == NO_FAILURES
    assert counts(customers) == {"orders": 1, "outbox": 1, "rejected_orders": 0}
    assert query(customers, "oltp", "SELECT pizza_type, qty, retail_price FROM orders") == [
        ("meat lover", 4, Decimal("15.50"))]


def test_two_different_orders_with_same_id_in_one_batch(customers):
    """Within one batch the first order with an id is stored and a differing second one is rejected as a conflict."""
    first, second = order("same", 1, qty=1), order("same", 1, qty=2)
    assert store.handler(event(first, second), None) == NO_FAILURES
    assert query(customers, "oltp", "SELECT qty FROM orders") == [(1,)]
    assert query(customers, "oltp", "SELECT reason, payload FROM rejected_orders") == [
        (REASON_CONFLICT, second.to_message())]


def test_store_event_file(customers):
    """The stored SQS event file (two orders and one poison message) stores two orders and fails one record."""
    response = store.handler(load_event("sqs_store_mixed_batch.json"), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "c5b9b5a6-0003-4f1e-9a53-000000000003"}]}
    rows = query(customers, "oltp", "SELECT order_id, customer_id, pizza_type, qty, retail_price, accepted_at "
                                    "FROM orders ORDER BY order_id")
    accepted = datetime(2024, 3, 1, 18, 30, tzinfo=UTC)
    assert rows == [
        ("file-order-1", 1, "pepperoni", 2, Decimal("14.99"), accepted),
        ("file-order-2", 3, "veggie", 1, Decimal("11.50"), accepted + timedelta(seconds=1)),
    ]
    assert counts(customers) == {"orders": 2, "outbox": 2, "rejected_orders": 0}


def test_database_error_on_one_order_fails_only_that_message(customers):
    """When the database refuses one order, the batch is retried one by one and only that message is reported."""
    admin = customers.connect("oltp", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("""CREATE FUNCTION refuse_explode() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN IF NEW.order_id = 'explode' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$""")
        cur.execute("CREATE TRIGGER refuse_explode BEFORE INSERT ON orders "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_explode()")
    try:
        evt = event(order("fine-1", 1), message(order("explode", 1), "bad-msg"), order("fine-2", 2))
        assert store.handler(evt, None) == {"batchItemFailures": [{"itemIdentifier": "bad-msg"}]}
        assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [("fine-1",), ("fine-2",)]
        assert counts(customers) == {"orders": 2, "outbox": 2, "rejected_orders": 0}
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP TRIGGER IF EXISTS refuse_explode ON orders")
            cur.execute("DROP FUNCTION IF EXISTS refuse_explode()")
        admin.close()


def test_connection_cut_by_server_is_retried_on_a_fresh_one(customers):
    """If the server cut the cached OLTP connection, the batch is retried once on a new connection and stored."""
    from lambdas.core import db

    assert store.handler(event(order("warm", 1)), None) == NO_FAILURES  # opens the cached connection
    old_pid = db.cached_connection("oltp", lambda: None).get_backend_pid()
    admin = customers.connect("oltp", autocommit=True)
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        assert cur.fetchall() == [(True,)]
    admin.close()
    evt = event(message(order("a", 1), "m-a"), message(order("b", 2), "m-b"))
    assert store.handler(evt, None) == NO_FAILURES
    assert counts(customers) == {"orders": 3, "outbox": 3, "rejected_orders": 0}
    assert db.cached_connection("oltp", lambda: None).get_backend_pid() != old_pid


def returned_to_queue(evt: dict) -> list[str]:
    """The message ids the event source mapping would not delete: reported failures, or all when the handler raises."""
    try:
        response = store.handler(evt, None)
    except Exception:  # noqa: BLE001 - Lambda (and the local runtime) retry the whole batch
        return sorted(r["messageId"] for r in evt["Records"])
    return sorted(f["itemIdentifier"] for f in response["batchItemFailures"])


def test_unreachable_database_returns_whole_batch(customers, monkeypatch):
    """With the OLTP database unreachable every message goes back to the queue; once it is back, all are stored."""
    from lambdas.core import db
    from txpipe_cli.local.target import free_port

    db.drop_cached("oltp")
    monkeypatch.setenv("TXPIPE_OLTP_PORT", str(free_port()))  # nothing listens there
    evt = event(message(order("a", 1), "m-a"), message("not json", "m-bad"), message(order("b", 2), "m-b"))
    assert returned_to_queue(evt) == ["m-a", "m-b", "m-bad"]
    assert counts(customers)["orders"] == 0
    monkeypatch.setenv("TXPIPE_OLTP_PORT", str(customers.endpoints["oltp"].port))
    assert returned_to_queue(evt) == ["m-bad"]
    assert counts(customers) == {"orders": 2, "outbox": 2, "rejected_orders": 0}


def test_large_batch_with_copies_across_pages(customers):
    """A 250-record batch (beyond one INSERT page) with every order sent twice stores each order exactly once."""
    orders = [order(f"big-{i:03d}", 1 + i % 3, qty=1 + i % 5) for i in range(125)]
    assert store.handler(event(*orders, *orders), None) == NO_FAILURES
    assert counts(customers) == {"orders": 125, "outbox": 125, "rejected_orders": 0}


def test_parallel_overlapping_batches_store_each_order_once(customers):
    """Two store invocations running at once with the same orders in opposite order store each order once."""
    import threading

    from lambdas.core import db

    orders = [order(f"par-{i:02d}", 1 + i % 3) for i in range(40)]
    responses: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def invoke(batch: list) -> None:
        try:
            barrier.wait(timeout=5)
            responses.append(store.handler(event(*batch), None))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            db.drop_cached("oltp")  # this thread's cached connection

    threads = [threading.Thread(target=invoke, args=(batch,)) for batch in (orders, orders[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert responses == [NO_FAILURES, NO_FAILURES]
    assert counts(customers) == {"orders": 40, "outbox": 40, "rejected_orders": 0}


def test_packed_messages_store_every_order_and_fail_alone(customers):
    """Packed messages (one per request) store all their orders; a packed message with a bad order fails alone."""
    good = pack_messages([order("pk-1", 1), order("pk-2", 2, "veggie", 3, "13.99")])[0]
    other = pack_messages([order("pk-3", 1)])[0]
    bad = good.replace('"qty":1', '"qty":0', 1).replace("pk-1", "pk-bad")
    response = store.handler(event(message(good), message(bad, message_id="bad-pack"), message(other)), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad-pack"}]}
    assert query(customers, "oltp", "SELECT order_id FROM orders ORDER BY order_id") == [
        ("pk-1",), ("pk-2",), ("pk-3",)]
    assert counts(customers) == {"orders": 3, "outbox": 3, "rejected_orders": 0}

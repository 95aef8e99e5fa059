"""Accepted orders (lambdas/core/orders.py): identity, acceptance time and the queue message format."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from lambdas.core.orders import (
    Order,
    OrderIn,
    RequestRejected,
    accept,
    pack_messages,
    parse_json,
    unpack_message,
    validate_items,
)

ACCEPTED_AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def raw_order(**literals: str) -> str:
    """A JSON order object whose field values are given as raw JSON text (so numbers keep their spelling)."""
    fields = {"customer_id": "42", "type": '"supreme"', "qty": "2", "retail_price": "16.99", **literals}
    return "{" + ",".join(f'"{name}":{text}' for name, text in fields.items() if text is not None) + "}"


def check(body: bytes | str) -> list[OrderIn]:
    """parse_json + validate_items, the way the ingest handler runs them."""
    return validate_items(parse_json(body.encode() if isinstance(body, str) else body))


def message(**overrides: Any) -> str:
    data = {"order_id": "ord-1", "customer_id": 42, "type": "supreme", "qty": 2, "retail_price": "16.99",
            "accepted_at": ACCEPTED_AT.isoformat(), **overrides}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


# --- accept and the queue message -----------------------------------------------------------------


def test_accept_keeps_client_ids_and_stamps_fresh_ones() -> None:
    """accept keeps a client's order_id, gives others a distinct UUID, and stamps one acceptance time."""
    orders = check("[" + ",".join([raw_order(order_id='"mine"'), raw_order(), raw_order()]) + "]")
    accepted = accept(orders, now=ACCEPTED_AT)
    assert accepted[0].order_id == "mine"
    fresh = [a.order_id for a in accepted[1:]]
    assert len(set(fresh)) == 2
    assert all(uuid.UUID(order_id) for order_id in fresh)
    assert {a.accepted_at for a in accepted} == {ACCEPTED_AT}
    assert [(a.customer_id, a.type, a.qty, a.retail_price) for a in accepted] == [
        (42, "supreme", 2, Decimal("16.99"))] * 3


def test_accept_defaults_to_now_in_utc() -> None:
    """Without `now`, accept stamps the current, timezone-aware UTC time."""
    before = datetime.now(UTC)
    [order] = accept(check(raw_order()))
    after = datetime.now(UTC)
    assert order.accepted_at.utcoffset() == timedelta(0)
    assert before <= order.accepted_at <= after


@pytest.mark.parametrize("price", ["16.99", "0.01", "0.1", "999.99", "1000", "12.50", "1e2"])
def test_money_is_exact_through_the_queue(price: str) -> None:
    """retail_price stays the exact Decimal from the request text through to_message/from_message."""
    [order] = accept(check(raw_order(retail_price=price)), now=ACCEPTED_AT)
    assert order.retail_price == Decimal(price)
    text = order.to_message()
    assert json.loads(text)["retail_price"] == str(Decimal(price))  # a string, never a float
    back = Order.from_message(text)
    assert back == order
    assert isinstance(back.retail_price, Decimal) and back.retail_price == Decimal(price)


def test_16_99_stays_16_99() -> None:
    """The canonical example: 16.99 is Decimal('16.99') after a round trip, not 16.989999..."""
    [order] = accept(check(raw_order(retail_price="16.99", order_id='"o-1"')), now=ACCEPTED_AT)
    back = Order.from_message(order.to_message())
    assert str(back.retail_price) == "16.99"
    assert back.content() == (42, "supreme", 2, Decimal("16.99"))


def test_round_trip_keeps_timezone_and_microseconds() -> None:
    """accepted_at survives the message with its offset and microseconds."""
    stamp = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-6)))
    order = Order("o-9", 7, "veggie", 100, Decimal("1000.00"), stamp)
    back = Order.from_message(order.to_message())
    assert back == order
    assert back.accepted_at.utcoffset() == timedelta(hours=-6)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("", id="empty"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"text"', id="string"),
        pytest.param(message(accepted_at=...), id="missing-accepted_at"),
        pytest.param(message(accepted_at="2024-05-01T12:30:15"), id="naive-timestamp"),
        pytest.param(message(accepted_at="yesterday"), id="bad-timestamp"),
        pytest.param(message(accepted_at=1714566615), id="numeric-timestamp"),
        pytest.param(message(order_id=...), id="missing-order_id"),
        pytest.param(message(retail_price=...), id="missing-price"),
        pytest.param(message(retail_price="abc"), id="price-not-a-number"),
        pytest.param(message(retail_price="NaN"), id="price-NaN"),
        pytest.param(message(retail_price="16.999"), id="price-3-decimals"),
        pytest.param(message(retail_price=16.99), id="price-float"),
        pytest.param(message(retail_price=[1]), id="price-list"),
        pytest.param(message(qty=0), id="qty-0"),
        pytest.param(message(qty="2"), id="qty-string"),
        pytest.param(message(type="Cheese"), id="bad-type"),
        pytest.param(message(extra=1), id="extra-field"),
        pytest.param(
            message(retail_price=True), id="price-boolean",
        ),
    ],
)
def test_from_message_refuses_malformed_messages(body: str) -> None:
    """A malformed queue message (a poison message) raises ValueError, never another exception."""
    with pytest.raises(ValueError):
        Order.from_message(body)


def test_from_message_reads_a_well_formed_message() -> None:
    """A well-formed message yields the Order it describes."""
    assert Order.from_message(message()) == Order("ord-1", 42, "supreme", 2, Decimal("16.99"), ACCEPTED_AT)


# --------------------------------------------------------------------------- queue messages


def _accepted(count: int) -> list[Order]:
    items = [{"customer_id": i + 1, "type": "veggie", "qty": 1 + i % 100, "retail_price": 13.99,
              "order_id": f"pack-{i}"} for i in range(count)]
    return accept(validate_items(parse_json(json.dumps(items).encode())))


def test_a_request_packs_into_one_message_and_round_trips() -> None:
    """500 orders fit one message; unpacking gives back the same orders, in order, exactly."""
    orders = _accepted(500)
    messages = pack_messages(orders)
    assert len(messages) == 1
    assert unpack_message(messages[0]) == orders


def test_packing_splits_at_the_size_limit() -> None:
    """With a small limit the orders spread over several messages, none over the limit, none lost."""
    orders = _accepted(50)
    messages = pack_messages(orders, max_bytes=2_000)
    assert len(messages) > 1
    assert all(len(m.encode()) <= 2_000 for m in messages)
    assert [o for m in messages for o in unpack_message(m)] == orders


def test_a_single_order_message_of_earlier_releases_is_still_read() -> None:
    """A queue may still hold one-order messages during an upgrade: they unpack to one order."""
    order = _accepted(1)[0]
    assert unpack_message(order.to_message()) == [order]


@pytest.mark.parametrize("body", ['{"orders": []}', '{"orders": {}}', "not json", '{"orders": [{"order_id": "x"}]}',
                                  "[" * 100_000])
def test_malformed_messages_are_refused(body: str) -> None:
    """An empty, non-JSON or invalid packed message raises ValueError (the store reports it as failed)."""
    with pytest.raises(ValueError):
        unpack_message(body)


def _packed(**change: object) -> str:
    item = {"order_id": "p-1", "customer_id": 1, "type": "cheese", "qty": 2, "retail_price": "12.99",
            "accepted_at": "2026-11-25T12:00:00+00:00", **change}
    return '{"orders":[' + json.dumps(item, separators=(",", ":")) + "]}"


def test_packed_fast_path_reads_exact_values() -> None:
    """A packed message parsed in one call keeps the exact price and the aware accept time."""
    [order] = unpack_message(_packed())
    assert order.retail_price == Decimal("12.99") and order.accepted_at.utcoffset() is not None
    assert (order.order_id, order.customer_id, order.type, order.qty) == ("p-1", 1, "cheese", 2)


@pytest.mark.parametrize("change", [
    {"type": "Cheese"}, {"qty": 0}, {"qty": True}, {"customer_id": "1"}, {"retail_price": "12.999"},
    {"retail_price": "0"}, {"accepted_at": "2026-11-25T12:00:00"}, {"order_id": ""}, {"extra": 1},
])
def test_packed_fast_path_refuses_what_ingest_would(change: dict[str, object]) -> None:
    """The one-call validation of a packed message applies the same rules as ingest."""
    with pytest.raises(ValueError):
        unpack_message(_packed(**change))


@pytest.mark.parametrize("order_id", ["x ", " x"])
def test_a_queued_order_id_with_an_edge_space_is_still_stored(order_id: str) -> None:
    """The door refuses such ids now, but one an earlier release accepted (and answered 202) may sit in the queue:
    both message formats still read it, so the store keeps it rather than dead-lettering it."""
    with pytest.raises(RequestRejected, match="must not start or end with a space"):
        check(raw_order(order_id=json.dumps(order_id)))
    assert [o.order_id for o in unpack_message(_packed(order_id=order_id))] == [order_id]
    assert Order.from_message(message(order_id=order_id)).order_id == order_id


def test_packed_fast_path_refuses_an_empty_list() -> None:
    """A packed message must hold at least one order."""
    with pytest.raises(ValueError):
        unpack_message('{"orders":[]}')

"""Hostile bodies (lambdas/core/orders.py): refusals stay small and cheap, whatever was sent."""

from __future__ import annotations

import json

import pytest

from lambdas.core.orders import (
    MAX_BODY_BYTES,
    MAX_ERRORS_KEPT,
    MAX_FIELD_CHARS,
    MAX_JSON_SEPARATORS,
    MAX_ORDER_KEYS,
    MAX_ORDERS_PER_REQUEST,
    MAX_REASON_CHARS,
    OrderIn,
    RequestRejected,
    parse_json,
    validate_items,
)

ORDER = {"customer_id": 42, "type": "supreme", "qty": 2, "retail_price": 16.99}


def check(body: bytes) -> list[OrderIn]:
    """parse_json + validate_items, the way the ingest handler runs them."""
    return validate_items(parse_json(body))


def rejected(body: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        check(body)
    return info.value


def test_an_order_with_90000_keys_is_one_error() -> None:
    """The adversary's body: 90,000 unknown keys are one error naming the item, the count and the real fields."""
    body = b"{" + b",".join(b'"k%05d":1' % i for i in range(90_000)) + b"}"
    assert len(body) <= MAX_BODY_BYTES
    error = rejected(body)
    assert error.status == 400 and error.error_count == 1
    assert [e.to_dict() for e in error.errors] == [{
        "index": 0, "field": None,
        "reason": "order has 90000 fields; an order has 4 required and 1 optional: "
                  "customer_id, type, qty, retail_price, order_id",
    }]


def test_the_wide_order_guard_names_the_index_in_an_array() -> None:
    """In an array, only the over-wide item is refused whole; the others get their usual errors."""
    wide = {f"x{i}": 1 for i in range(MAX_ORDER_KEYS + 1)}
    error = rejected(json.dumps([ORDER, wide, {**ORDER, "qty": 0}]).encode())
    assert [(e.index, e.field) for e in error.errors] == [(1, None), (2, "qty")]
    assert f"order has {MAX_ORDER_KEYS + 1} fields" in error.errors[0].reason


def test_unknown_keys_in_a_normal_sized_order_are_named_one_by_one() -> None:
    """Up to MAX_ORDER_KEYS keys, pydantic still names each unknown key."""
    extras = {f"x{i}": 1 for i in range(MAX_ORDER_KEYS - len(ORDER))}
    error = rejected(json.dumps({**ORDER, **extras}).encode())
    assert [(e.index, e.field) for e in error.errors] == [(0, key) for key in extras]
    assert {e.reason for e in error.errors} == {"Extra inputs are not permitted"}


def test_errors_past_the_cap_are_counted_exactly() -> None:
    """500 items with 3 bad fields each: the first MAX_ERRORS_KEPT errors are listed, all 1,500 counted."""
    bad = {**ORDER, "customer_id": 0, "qty": 0, "type": "hawaiian"}
    error = rejected(json.dumps([bad] * MAX_ORDERS_PER_REQUEST).encode())
    assert error.error_count == 3 * MAX_ORDERS_PER_REQUEST
    assert len(error.errors) == MAX_ERRORS_KEPT
    assert [e.index for e in error.errors] == sorted(e.index for e in error.errors)  # the first items, in order
    assert error.errors[0].index == 0


def test_every_kind_of_item_error_is_counted_past_the_cap() -> None:
    """Non-objects, over-wide objects and duplicate ids after the cap each still count once."""
    items = [1] * MAX_ERRORS_KEPT + [None, {f"x{i}": 1 for i in range(20)},
                                     {**ORDER, "order_id": "a"}, {**ORDER, "order_id": "a"}, ORDER]
    error = rejected(json.dumps(items).encode())
    assert error.error_count == MAX_ERRORS_KEPT + 3
    assert len(error.errors) == MAX_ERRORS_KEPT


def test_a_huge_unknown_key_is_not_echoed_back() -> None:
    """A 100,000-character key is named clipped to MAX_FIELD_CHARS; no reason passes MAX_REASON_CHARS."""
    key = "k" * 100_000
    error = rejected(json.dumps({**ORDER, key: 1}).encode())
    [item] = error.errors
    assert item.field == key[:MAX_FIELD_CHARS - 3] + "..."
    assert len(item.reason) <= MAX_REASON_CHARS


@pytest.mark.parametrize("field", ["customer_id", "type", "qty", "retail_price", "order_id"])
def test_a_huge_value_is_not_echoed_back(field: str) -> None:
    """A 1 MiB string in any field is refused with a short reason."""
    error = rejected(json.dumps({**ORDER, field: "v" * (MAX_BODY_BYTES - 200)}).encode())
    assert [(e.index, e.field) for e in error.errors] == [(0, field)]
    assert len(error.errors[0].reason) <= MAX_REASON_CHARS


def test_a_body_dense_with_values_is_refused_before_it_is_built() -> None:
    """1 MiB of "0.1," would be 350,000 Decimals; it is refused on a count of its commas and brackets."""
    body = b"[" + b",".join([b"0.1"] * MAX_JSON_SEPARATORS) + b"]"
    error = rejected(body)
    assert error.status == 400
    assert [(e.index, e.field) for e in error.errors] == [(None, None)]
    assert str(MAX_JSON_SEPARATORS) in error.errors[0].reason


def test_the_value_count_never_refuses_a_valid_request() -> None:
    """500 orders whose order_ids are 60 commas and brackets each stay well under the separator limit."""
    orders = [{**ORDER, "order_id": f"{i:03d}" + "[{," * 20 + "x"} for i in range(MAX_ORDERS_PER_REQUEST)]
    body = json.dumps(orders).encode()
    assert 30_000 < body.count(b",") + body.count(b"[") + body.count(b"{") < 40_000 < MAX_JSON_SEPARATORS
    assert len(check(body)) == MAX_ORDERS_PER_REQUEST


@pytest.mark.parametrize(("lists", "ok"), [(7, True), (8, False)])
def test_depth_limit_counts_the_scalar(lists: int, ok: bool) -> None:
    """Seven nested arrays around a number are depth 8, parsed; eight are depth 9, refused."""
    body = b"[" * lists + b"1" + b"]" * lists
    if ok:
        assert parse_json(body) is not None
    else:
        assert "too deep" in rejected(body).errors[0].reason

"""Property tests for order validation (lambdas/core/orders.py): any body gets orders or a clean 4xx.

The strategies here (valid orders, one-field mutations, arbitrary JSON) are also what
tests/unit/test_ingest_properties.py posts to the handler.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lambdas.core.orders import (
    MAX_FIELD_CHARS,
    MAX_REASON_CHARS,
    PIZZA_TYPES,
    OrderIn,
    RequestRejected,
    parse_json,
    validate_items,
)

BOUNDED = settings(max_examples=200, deadline=None)
FIELDS = ("customer_id", "type", "qty", "retail_price", "order_id")
MISSING = object()  # a mutation that drops the field


def to_json(value: Any) -> str:
    """JSON text in which a Decimal is written as the number it spells, exactly (json.dumps refuses Decimal)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# --- strategies ----------------------------------------------------------------------------------

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
order_ids = st.text(printable, min_size=1, max_size=64)
prices = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
    st.decimals(min_value=Decimal("0.1"), max_value=Decimal(1000), places=1),
    st.integers(1, 1000).map(Decimal),  # written as "7": parsed as int, accepted as Decimal(7)
)


@st.composite
def valid_orders(draw: st.DrawFn, ids: st.SearchStrategy[str] | None = order_ids) -> dict[str, Any]:
    """An order as a client posts it, every field valid; order_id only sometimes (never if ids is None)."""
    order: dict[str, Any] = {
        "customer_id": draw(st.integers(1, 2**63 - 1)),
        "type": draw(st.sampled_from(PIZZA_TYPES)),
        "qty": draw(st.integers(1, 100)),
        "retail_price": draw(prices),
    }
    if ids is not None and draw(st.booleans()):
        order["order_id"] = draw(ids)
    return order


containers = st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                              max_size=2))
string_numbers = st.one_of(st.integers(-5, 200).map(str), st.sampled_from(["16.99", "1e2", " 2"]))
fractions = st.decimals(min_value=-1000, max_value=1000, places=1).map(lambda d: d + Decimal("0.5"))
non_printable = st.characters(codec="utf-8").filter(lambda c: not " " <= c <= "~")

# Per field, values that must be refused with that field named: wrong type, out of range, wrong precision,
# bool, a number in a string, missing. (An extra key is its own mutation below.)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "customer_id": st.one_of(
        st.none(), st.booleans(), containers, string_numbers, fractions, st.just(Decimal("42.0")),
        st.integers(max_value=0), st.integers(min_value=2**63, max_value=10**40), st.just(MISSING),
    ),
    "type": st.one_of(
        st.text(max_size=20).filter(lambda t: t not in PIZZA_TYPES), st.sampled_from(["Cheese", "cheese ", ""]),
        st.none(), st.booleans(), st.integers(), containers, st.just(MISSING),
    ),
    "qty": st.one_of(
        st.integers(max_value=0), st.integers(min_value=101, max_value=10**30), st.booleans(), string_numbers,
        fractions, st.just(Decimal("2.0")), st.none(), containers, st.just(MISSING),
    ),
    "retail_price": st.one_of(
        st.decimals(min_value=-(10**9), max_value=0, places=2),
        st.decimals(min_value=Decimal("1000.01"), max_value=10**9, places=2),
        st.tuples(st.integers(0, 999_99), st.integers(1, 9)).map(lambda t: Decimal(t[0] * 10 + t[1]).scaleb(-3)),
        st.just(Decimal("1e-1000030")), st.booleans(), string_numbers, st.none(), containers, st.just(MISSING),
    ),
    "order_id": st.one_of(
        st.just(""), st.text(printable, min_size=65, max_size=100),
        st.tuples(st.text(printable, max_size=5), non_printable, st.text(printable, max_size=5)).map("".join),
        st.integers(), st.booleans(), containers,
    ),
}
extra_keys = st.text(max_size=30).filter(lambda k: k not in FIELDS)


@st.composite
def invalid_orders(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(field, order): a valid order with exactly one field made invalid, or one unknown key added."""
    order = draw(valid_orders())
    field = draw(st.sampled_from([*FIELDS, "extra"]))
    if field == "extra":
        key = draw(extra_keys)
        return key, {**order, key: draw(st.integers() | st.text(max_size=5) | st.none())}
    value = draw(INVALID[field])
    order = {k: v for k, v in order.items() if k != field}
    return field, order if value is MISSING else {**order, field: value}


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from(PIZZA_TYPES), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), children, max_size=5),
    max_leaves=12,
)


# --- properties ----------------------------------------------------------------------------------


def assert_orders_or_clean_refusal(body: bytes) -> list[OrderIn] | None:
    """parse_json + validate_items give orders, or RequestRejected with a 4xx and bounded, non-empty reasons."""
    try:
        orders = validate_items(parse_json(body))
    except RequestRejected as refused:
        assert 400 <= refused.status <= 499
        assert refused.errors and refused.error_count >= len(refused.errors)
        assert all(e.reason and len(e.reason) <= MAX_REASON_CHARS for e in refused.errors)
        assert all(e.field is None or len(e.field) <= MAX_FIELD_CHARS for e in refused.errors)
        return None
    assert orders and all(isinstance(o, OrderIn) for o in orders)
    return orders


@BOUNDED
@given(json_values)
def test_any_json_value_gets_orders_or_a_4xx(value: Any) -> None:
    """Any JSON value is either orders or a RequestRejected 4xx with reasons, never another exception."""
    assert_orders_or_clean_refusal(to_json(value).encode())


@BOUNDED
@given(st.binary(max_size=2_000))
def test_any_bytes_get_orders_or_a_4xx(body: bytes) -> None:
    """Any bytes at all are either orders or a RequestRejected 4xx with reasons, never another exception."""
    assert_orders_or_clean_refusal(body)


@BOUNDED
@given(st.lists(valid_orders(ids=None), min_size=1, max_size=8) | valid_orders().map(lambda o: [o]))
def test_valid_orders_are_accepted_unchanged(orders: list[dict[str, Any]]) -> None:
    """Every valid order is accepted with its values as sent; money exact down to its spelling."""
    body = to_json(orders if len(orders) > 1 else orders[0]).encode()
    accepted = assert_orders_or_clean_refusal(body)
    assert accepted is not None
    assert [o.model_dump() for o in accepted] == [{"order_id": None, **o} for o in orders]
    assert [str(o.retail_price) for o in accepted] == [str(o["retail_price"]) for o in orders]


@BOUNDED
@given(invalid_orders(), st.lists(valid_orders(ids=None), max_size=4), st.data())
def test_one_bad_field_is_refused_by_name(mutated: tuple[str, dict[str, Any]], others: list[dict[str, Any]],
                                          data: st.DataObject) -> None:
    """One field made invalid (anywhere in an array of valid orders) refuses the request, naming that field."""
    field, order = mutated
    event(f"mutated {field if field in FIELDS else 'extra key'}")
    position = data.draw(st.integers(0, len(others)))
    items = [*others[:position], order, *others[position:]]
    with pytest.raises(RequestRejected) as info:
        validate_items(parse_json(to_json(items).encode()))
    assert info.value.status == 400
    assert {(e.index, e.field) for e in info.value.errors} == {(position, field)}
    assert all(e.reason for e in info.value.errors)

"""Property tests for order validation (lambdas/core/orders.py): any body gets orders or a clean 4xx.

The strategies (valid orders, one-field mutations, arbitrary JSON) live in tests/support/strategies.py:
the ingest handler's and the HTTP API's property tests post the same ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lambdas.core.orders import (
    MAX_FIELD_CHARS,
    MAX_REASON_CHARS,
    OrderIn,
    RequestRejected,
    parse_json,
    validate_items,
)
from tests.support.strategies import (
    FIELDS,
    Pairs,
    control_char_ids,
    edge_spaced_ids,
    invalid_orders,
    json_values,
    order_ids,
    repeated_keys,
    to_json,
    valid_orders,
)

BOUNDED = settings(max_examples=200, deadline=None)


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


@BOUNDED
@given(repeated_keys(), st.lists(valid_orders(ids=None), max_size=4), st.data())
def test_a_repeated_key_is_refused_by_name(repeated: tuple[list[str], Pairs], others: list[dict[str, Any]],
                                           data: st.DataObject) -> None:
    """An order giving a key twice (same value or not, known field or not) refuses the request, naming each
    repeated key at that order's index and nothing else: never last-one-wins."""
    keys, order = repeated
    position = data.draw(st.integers(0, len(others)))
    items = [*others[:position], order, *others[position:]]
    with pytest.raises(RequestRejected) as info:
        validate_items(parse_json(to_json(items if others else order).encode()))
    assert info.value.status == 400
    assert [(e.index, e.field) for e in info.value.errors] == [(position, key) for key in keys]
    assert all("more than once" in e.reason for e in info.value.errors)


@BOUNDED
@given(valid_orders(ids=None), edge_spaced_ids | control_char_ids)
def test_an_order_id_with_an_edge_space_or_a_control_character_is_refused(order: dict[str, Any],
                                                                          order_id: str) -> None:
    """An order_id with a space at either end, or a control character anywhere, is refused naming order_id."""
    event("edge space" if order_id.strip(" ") != order_id else "control character")
    with pytest.raises(RequestRejected) as info:
        validate_items(parse_json(to_json({**order, "order_id": order_id}).encode()))
    assert [(e.index, e.field) for e in info.value.errors] == [(0, "order_id")]


@BOUNDED
@given(valid_orders(ids=None), order_ids)
def test_any_printable_ascii_id_without_edge_spaces_is_accepted(order: dict[str, Any], order_id: str) -> None:
    """Any 1..64 printable ASCII characters that neither start nor end with a space are an order_id, kept as sent."""
    [accepted] = validate_items(parse_json(to_json({**order, "order_id": order_id}).encode()))
    assert accepted.order_id == order_id

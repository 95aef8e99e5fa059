"""Hypothesis strategies and an oracle shared by the property tests (validator, ingest handler, HTTP API):
valid orders, one-field mutations, arbitrary JSON, and which bodies must be accepted.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from pydantic import ValidationError

from lambdas.core.orders import MAX_ORDERS_PER_REQUEST, PIZZA_TYPES, OrderIn

FIELDS = ("customer_id", "type", "qty", "retail_price", "order_id")
MISSING = object()  # a mutation that drops the field


def to_json(value: Any) -> str:
    """JSON text in which a Decimal is written as the number it spells, exactly (json.dumps refuses Decimal),
    and a Pairs object with every pair it holds, repeated keys and all."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


class Pairs:
    """A JSON object as a list of (key, value) pairs, so a key can be written twice."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"Pairs({self.pairs!r})"


# --- strategies ----------------------------------------------------------------------------------

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
# What the API accepts as a client's order_id: printable ASCII, no space at either end (issue 15).
order_ids = st.text(printable, min_size=1, max_size=64).filter(lambda t: t[0] != " " and t[-1] != " ")
# Refused: a space at an end (the warehouse ignores trailing blanks), within 64 characters.
edge_spaced_ids = st.one_of(
    st.text(printable, max_size=63).map(lambda t: " " + t),
    st.text(printable, max_size=63).map(lambda t: t + " "),
    st.text(printable, max_size=62).map(lambda t: " " + t + " "),
)
control_chars = st.characters(codec="ascii", categories=["Cc"])  # 0x00..0x1f and 0x7f: tab, newline, NUL, DEL...
# Refused: a control character anywhere (ASCII, or Latin-1's C1), within 64 characters.
control_char_ids = st.tuples(st.text(printable, max_size=31), control_chars | st.characters(min_codepoint=0x80,
                                                                                           max_codepoint=0x9F),
                             st.text(printable, max_size=32)).map("".join)
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
        edge_spaced_ids, control_char_ids, st.integers(), st.booleans(), containers,
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


@st.composite
def repeated_keys(draw: st.DrawFn) -> tuple[list[str], Pairs]:
    """(keys, object): a valid order with one or more keys written twice or more (an order field or an unknown
    key; the values the same or not), in any order; the keys repeated, each once, in order of second sight."""
    order = draw(valid_orders())
    pairs = list(order.items())
    chosen = draw(st.lists(st.sampled_from(FIELDS) | extra_keys, min_size=1, max_size=3, unique=True))
    for key in chosen:
        value = order.get(key, 1)
        for _ in range(draw(st.integers(1, 2)) + (key not in order)):
            pairs.append((key, draw(st.just(value) | st.integers(0, 200) | st.none())))
    shuffled = draw(st.permutations(pairs))
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for key, _ in shuffled:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    return list(repeated), Pairs(shuffled)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from(PIZZA_TYPES), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), children, max_size=5),
    max_leaves=12,
)



def _no_constants(name: str) -> Any:
    raise ValueError(name)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a key twice")
    return dict(pairs)


def oracle(body: bytes) -> list[OrderIn] | None:
    """The orders a request must be accepted with, or None if it must be refused, written apart from
    validate_items: one order object, or an array of 1..500 objects, each passing OrderIn, no order_id twice,
    no object giving a key twice, no order_id with a space at an end."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants,
                          object_pairs_hook=_no_repeats)
    except (ValueError, RecursionError, ArithmeticError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    if isinstance(data, list) and 1 <= len(data) <= MAX_ORDERS_PER_REQUEST:
        items = data
    elif isinstance(data, dict):
        items = [data]
    else:
        return None
    try:
        orders = [OrderIn.model_validate(item) for item in items]
    except ValidationError:  # also a non-object item: model_validate refuses anything but a dict here
        return None
    ids = [o.order_id for o in orders if o.order_id is not None]
    if any(i != i.strip(" ") for i in ids):
        return None
    return orders if len(ids) == len(set(ids)) else None



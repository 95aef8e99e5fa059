"""The ingest handler (lambdas/core/ingest.py) against hostile bodies: 202 only for valid orders,
otherwise a small 4xx, never a 5xx or an exception; and bounded memory for any 1 MiB body."""

from __future__ import annotations

import base64
import json
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.core import ingest
from lambdas.core.orders import MAX_BODY_BYTES, MAX_JSON_SEPARATORS, MAX_ORDERS_PER_REQUEST, unpack_message
from tests.support.strategies import Pairs, invalid_orders, json_values, oracle, repeated_keys, to_json, valid_orders

BOUNDED = settings(max_examples=200, deadline=None)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MAX_RESPONSE_BYTES = 16_000


class FakeQueue:
    """Records what the handler enqueues."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_batch(self, bodies: list[str]) -> None:
        self.sent.extend(bodies)


def event(raw: bytes) -> dict[str, Any]:
    """An API Gateway REST proxy event carrying `raw` as a base64 body."""
    return {"httpMethod": "POST", "body": base64.b64encode(raw).decode(), "isBase64Encoded": True, "headers": {}}


def assert_handled(ev: dict[str, Any], seen: bytes) -> dict[str, Any]:
    """handle() answers 202 exactly when the oracle accepts `seen` (the bytes it parses), enqueueing exactly
    those orders; otherwise a small 4xx with reasons, and nothing enqueued."""
    queue = FakeQueue()
    result = ingest.handle(ev, queue, now=lambda: NOW)
    assert isinstance(result, dict)
    body = json.loads(result["body"])
    expected = oracle(seen)
    if expected is not None:
        assert result["statusCode"] == 202, body
        sent = [order for message in queue.sent for order in unpack_message(message)]
        assert [o.order_id for o in sent] == body["order_ids"]
        assert [(o.customer_id, o.type, o.qty, str(o.retail_price)) for o in sent] == [
            (e.customer_id, e.type, e.qty, str(e.retail_price)) for e in expected]
        assert all(o.order_id == e.order_id for o, e in zip(sent, expected, strict=True) if e.order_id is not None)
        assert {o.accepted_at for o in sent} == {NOW}
    else:
        assert 400 <= result["statusCode"] <= 499, body
        assert queue.sent == []
        assert body["error"] and body["errors"]
        assert all(e["reason"] and set(e) == {"index", "field", "reason"} for e in body["errors"])
        assert len(body["errors"]) == min(body["error_count"], ingest.MAX_ERRORS_SHOWN)
        assert len(result["body"]) < MAX_RESPONSE_BYTES
    return body


# --- properties ----------------------------------------------------------------------------------


@BOUNDED
@given(st.binary(max_size=2_000))
def test_any_bytes(raw: bytes) -> None:
    """Arbitrary bytes as a base64 body: 202 only if valid, else a clean 4xx."""
    assert_handled(event(raw), raw)


@BOUNDED
@given(st.text(max_size=500))
def test_any_text_body(text: str) -> None:
    """Arbitrary text as a plain (not base64) body: the same verdicts."""
    ev = {"httpMethod": "POST", "body": text, "isBase64Encoded": False, "headers": {}}
    assert_handled(ev, text.encode("utf-8", "surrogatepass"))


@BOUNDED
@given(json_values)
def test_any_json(value: Any) -> None:
    """Arbitrary JSON (hypothesis' recursive strategy): 202 only if valid, else a clean 4xx."""
    raw = to_json(value).encode()
    assert_handled(event(raw), raw)


mostly_valid = st.one_of(
    valid_orders(ids=st.sampled_from(["a", "b", "c", "order-1"])),  # a few ids, so some requests repeat one
    valid_orders(),
    invalid_orders().map(lambda mutated: mutated[1]),
)


@BOUNDED
@given(st.lists(mostly_valid, min_size=0, max_size=12) | mostly_valid)
def test_mostly_valid_orders(orders: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Arrays (or one object) of mostly valid orders: a 202 enqueues exactly the orders sent."""
    raw = to_json(orders).encode()
    assert_handled(event(raw), raw)


@BOUNDED
@given(repeated_keys(), st.lists(valid_orders(ids=None), max_size=4))
def test_an_order_repeating_a_key_enqueues_nothing(repeated: tuple[list[str], Pairs],
                                                   others: list[dict[str, Any]]) -> None:
    """Valid orders and one giving a key twice: 400 naming each repeated key at that order's index, nothing
    enqueued (the valid orders neither)."""
    keys, order = repeated
    raw = to_json([*others, order]).encode()
    body = assert_handled(event(raw), raw)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(len(others), key) for key in keys]


# --- the refusal shape ---------------------------------------------------------------------------

ORDER = {"customer_id": 42, "type": "supreme", "qty": 2, "retail_price": 16.99}


def test_a_refusal_always_counts_its_errors() -> None:
    """One bad field: one error listed, and error_count 1."""
    raw = json.dumps({**ORDER, "qty": 0}).encode()
    body = assert_handled(event(raw), raw)
    assert body == {"error": "request refused; nothing was enqueued",
                    "errors": [{"index": 0, "field": "qty", "reason": body["errors"][0]["reason"]}],
                    "error_count": 1}


def test_a_refusal_lists_the_first_20_errors_and_counts_all() -> None:
    """500 bad orders with 2 bad fields each: the first 20 errors listed, 1,000 counted."""
    raw = json.dumps([{**ORDER, "qty": 0, "type": "calzone"}] * MAX_ORDERS_PER_REQUEST).encode()
    body = assert_handled(event(raw), raw)
    assert body["error_count"] == 2 * MAX_ORDERS_PER_REQUEST
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(i // 2, ("type", "qty")[i % 2]) for i in range(20)]


def test_bad_base64_is_a_400_with_a_count() -> None:
    """A body that is not base64 is refused in the same shape."""
    queue = FakeQueue()
    result = ingest.handle({"httpMethod": "POST", "body": "@@@", "isBase64Encoded": True}, queue)
    assert result["statusCode"] == 400 and queue.sent == []
    assert json.loads(result["body"])["error_count"] == 1


# --- memory --------------------------------------------------------------------------------------


def _filled(prefix: bytes, unit: bytes, suffix: bytes) -> bytes:
    """prefix + unit,unit,... + suffix, as many units as fit in MAX_BODY_BYTES."""
    count = (MAX_BODY_BYTES - len(prefix) - len(suffix) + 1) // (len(unit) + 1)
    return prefix + b",".join([unit] * count) + suffix


HOSTILE_BODIES = {
    "90k-unknown-keys": lambda: b"{" + b",".join(b'"k%05d":1' % i for i in range(90_000)) + b"}",
    "90k-tiny-items": lambda: b"[" + b",".join([b'{"a":1}'] * 90_000) + b"]",
    "100k-decimals": lambda: b"[" + b",".join([b"0.1"] * MAX_JSON_SEPARATORS) + b"]",  # the most json.loads builds
    "100k-empty-arrays": lambda: b"[" + b",".join([b"[]"] * (MAX_JSON_SEPARATORS // 2)) + b"]",
    "1MiB-of-decimals": lambda: _filled(b"[", b"0.1", b"]"),  # past the separator count: never built
    "depth-8-wide": lambda: _filled(b"[" * 7, b'"abcdefgh"', b"]" * 7),
    "depth-9-wide": lambda: _filled(b"[" * 8, b'"abcdefgh"', b"]" * 8),
    "1MiB-string": lambda: b'{"customer_id":"' + b"x" * (MAX_BODY_BYTES - 20) + b'"}',
    "1MiB-key": lambda: b'{"' + b"k" * (MAX_BODY_BYTES - 10) + b'":1}',
    "100k-repeats-of-one-key": lambda: b"{" + b",".join([b'"a":1'] * (MAX_JSON_SEPARATORS - 1)) + b"}",
    "33k-items-repeating-a-key": lambda: b"[" + b",".join([b'{"a":1,"a":1}'] * (MAX_JSON_SEPARATORS // 3)) + b"]",
    "500-orders-of-16-long-keys": lambda: json.dumps(
        [{f"{'k' * 90}{j:02d}": 1 for j in range(16)}] * MAX_ORDERS_PER_REQUEST).encode(),
}


@pytest.mark.parametrize("make", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_memory_stays_bounded_for_any_body_up_to_the_limit(make: Any) -> None:
    """A hostile body of up to 1 MiB peaks under 40 MB of Python allocations and gets a 4xx under 16 KB.

    tracemalloc sees Python's allocator only, not pydantic-core's: the wide-order guard is what keeps
    pydantic's share small (it never sees more than MAX_ORDER_KEYS keys an item).
    """
    raw = make()
    assert len(raw) <= MAX_BODY_BYTES
    ev, queue = event(raw), FakeQueue()
    del raw
    tracemalloc.start()
    try:
        result = ingest.handle(ev, queue)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 400 <= result["statusCode"] <= 499 and queue.sent == []
    assert peak < 40_000_000, f"peak {peak / 1e6:.1f} MB"
    assert len(result["body"]) < MAX_RESPONSE_BYTES
    assert json.loads(result["body"])["error_count"] >= 1

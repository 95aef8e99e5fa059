"""`txpipe send` internals (txpipe_cli/sender.py) against a real HTTP server on 127.0.0.1.

The fake orders API these tests send to is tests/support/sender.py's (it validates with the real API's
validator and, like the real store, keeps each order_id once); the `client` fixture is tests/unit/conftest.py's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.sender import FakeApi, Sleeps, order, order_file, serve
from txpipe_cli.errors import TxpipeError
from txpipe_cli.order_file import Unreadable
from txpipe_cli.sender import RETRIES, ApiClient, read_orders, send


def exact(*items: Any) -> list[Any]:
    """The items as read_orders reads them from a file: numbers with a fraction as Decimal."""
    return [json.loads(json.dumps(item), parse_float=Decimal) for item in items]


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    with serve(fake) as url:
        yield fake, url


# --- read_orders ----------------------------------------------------------------------------------


def test_read_orders_json_object(tmp_path: Path) -> None:
    """A file holding one JSON object yields a one-item list at index 0."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps(order(1), indent=2))
    read = read_orders(path)
    assert (read.items, read.positions, read.position_kind) == (exact(order(1)), [0], "index")


def test_read_orders_json_array(tmp_path: Path) -> None:
    """A (pretty-printed) JSON array yields its items in order, at their 0-based indexes."""
    path = tmp_path / "many.json"
    path.write_text(json.dumps([order(1), order(2), order(3)], indent=1))
    read = read_orders(path)
    assert (read.items, read.positions, read.position_kind) == (exact(order(1), order(2), order(3)), [0, 1, 2],
                                                                "index")


def test_read_orders_ndjson_with_blank_lines(tmp_path: Path) -> None:
    """NDJSON with blank and whitespace-only lines: one item per non-blank line, at its 1-based line number."""
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps(order(1)) + "\n\n" + json.dumps(order(2)) + "\n   \n" + json.dumps(order(3)) + "\n")
    read = read_orders(path)
    assert (read.items, read.positions, read.position_kind) == (exact(order(1), order(2), order(3)), [1, 3, 5],
                                                                "line")


def test_read_orders_tolerates_a_bom_and_reads_as_the_api_does(tmp_path: Path) -> None:
    """A BOM is skipped; numbers are read exactly (Decimal, spelling kept) and a repeated key is kept twice,
    as the API will read the order, so what send checks is what it posts."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'[{"retail_price": 16.990, "qty": 1, "qty": 2}]')
    [item] = read_orders(path).items
    assert item == {"retail_price": Decimal("16.990"), "qty": 2}
    assert str(item["retail_price"]) == "16.990"
    assert item.pairs == [("retail_price", Decimal("16.990")), ("qty", 1), ("qty", 2)]  # type: ignore[attr-defined]


def test_read_orders_ndjson_bad_line_is_an_item_at_its_line(tmp_path: Path) -> None:
    """A bad NDJSON line is an Unreadable item at its (1-based, blank lines counted) line number, with its text
    and the parser's reason; the file is not refused (tests/unit/test_sender_unreadable.py sends it)."""
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps(order(1)) + "\n\n" + '{"customer_id": 2, "type": \n')
    read = read_orders(path)
    assert read.positions == [1, 3] and read.items[0] == exact(order(1))[0]
    assert read.items[1] == Unreadable('{"customer_id": 2, "type": ', "not valid JSON: Expecting value (column 28)")


def test_read_orders_garbage_after_blank_lines_names_the_line(tmp_path: Path) -> None:
    """A file of blank lines then garbage raises TxpipeError naming the garbage's line."""
    path = tmp_path / "junk.txt"
    path.write_text("\n\n  \nnot json at all\n")
    with pytest.raises(TxpipeError, match=r"line 4"):
        read_orders(path)


def test_read_orders_invalid_first_line(tmp_path: Path) -> None:
    """A file that is neither JSON nor NDJSON from its first line says so, with the parser's position."""
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"customer_id": 1,\n  oops\n]\n')
    with pytest.raises(TxpipeError, match=r"neither JSON nor NDJSON: .*line 3"):
        read_orders(path)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[" * 600 + "]" * 600])
def test_read_orders_too_deep(tmp_path: Path, text: str) -> None:
    """A whole file nested 100,000 or 600 deep is a TxpipeError, not a RecursionError (600 levels parse, but
    writing them back would pass Python's recursion limit)."""
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(TxpipeError, match="nested too deep"):
        read_orders(path)


@pytest.mark.parametrize("deep", ["[" * 100_000 + "]" * 100_000, '{"a":' * 600 + "1" + "}" * 600])
def test_read_orders_too_deep_line_is_refused_alone(tmp_path: Path, deep: str) -> None:
    """One NDJSON line nested too deep is refused at its line, as it was; the line before it stands."""
    path = tmp_path / "deep.ndjson"
    path.write_text('{"a": 1}\n' + deep)
    read = read_orders(path)
    assert read.positions == [1, 2] and read.items[1] == Unreadable(deep, "JSON nested too deep to be an order")


def test_nan_and_infinity_are_refused_by_position(client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """NaN or Infinity in a file is read, then refused at its line like any invalid order; the rest is sent."""
    api_client, fake, _ = client
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps(order(1)) + "\n" + '{"customer_id": 2, "type": "cheese", "qty": NaN, '
                    '"retail_price": Infinity}\n' + json.dumps(order(3)) + "\n")
    result = send(api_client, read_orders(path))
    assert [(r.position, r.errors[0]["reason"]) for r in result.refusals] == [(2, "malformed JSON: NaN is not valid "
                                                                                 "JSON")]
    assert sorted(i["customer_id"] for i in fake.stored.values()) == [1, 3]


def test_read_orders_empty_file_holds_no_items(tmp_path: Path) -> None:
    """An empty or blank file yields no items (the send command then refuses it as holding no orders)."""
    path = tmp_path / "empty.json"
    path.write_text("\n \n")
    assert read_orders(path).items == []


def test_read_orders_missing_or_undecodable_file(tmp_path: Path) -> None:
    """A missing file or non-UTF-8 bytes raise TxpipeError 'cannot read', not an OSError/UnicodeError."""
    with pytest.raises(TxpipeError, match="cannot read"):
        read_orders(tmp_path / "absent.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"type": "caf\xe9"}')
    with pytest.raises(TxpipeError, match="cannot read"):
        read_orders(latin)


# --- ApiClient ------------------------------------------------------------------------------------


def test_5xx_is_retried_with_the_same_body(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A 503 followed by 202 is retried after a backoff; the retry carries the same order_ids."""
    api_client, fake, sleeps = client
    fake.forced.append(503)
    result = send(api_client, order_file([order(1), order(2)]))
    assert (result.sent, result.accepted, result.refused, result.requests) == (2, 2, 0, 1)
    assert len(fake.posts) == 2
    assert fake.bodies[0] == fake.bodies[1]
    assert sleeps == [0.2]
    assert len(fake.stored) == 2


def test_5xx_every_time_gives_up(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """After RETRIES 5xx answers in a row the client raises TxpipeError with a hint, backing off exponentially."""
    api_client, fake, sleeps = client
    fake.forced.extend([500, 502, 503, 504])
    with pytest.raises(TxpipeError) as info:
        api_client.post(b"[]")
    assert f"failed {RETRIES} times" in info.value.reason
    assert "504" in info.value.reason
    assert info.value.hint
    assert len(fake.posts) == RETRIES
    assert sleeps == [0.2, 0.4, 0.8]  # between attempts, none after the last


def test_transport_error_is_retried() -> None:
    """A refused connection is retried on a fresh connection and finally reported as TxpipeError."""
    sleeps = Sleeps()
    # Port 1 on loopback is closed: every attempt fails at connect time.
    dead = ApiClient("http://127.0.0.1:1", timeout=2, sleep=sleeps)
    try:
        with pytest.raises(TxpipeError, match="failed 4 times"):
            dead.post(b"[]")
    finally:
        dead.close()
    assert sleeps == [0.2, 0.4, 0.8]  # between attempts, none after the last


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http://", ""])
def test_bad_api_url_is_refused(url: str) -> None:
    """A URL that is not http(s) with a host raises TxpipeError."""
    with pytest.raises(TxpipeError, match="bad API URL"):
        ApiClient(url)


def test_api_base_path_and_headers_are_kept(api: tuple[FakeApi, str]) -> None:
    """A base URL with a stage path posts to <path>/orders (e.g. /prod/orders), with the given headers."""
    fake, url = api
    api_client = ApiClient(url + "/prod/", timeout=5, sleep=lambda s: None, headers={"x-api-key": "k1"})
    try:
        status, _ = api_client.post(b"[]")
    finally:
        api_client.close()
    assert status == 404
    assert fake.posts[0][0] == "/prod/orders"
    assert fake.headers[0]["x-api-key"] == "k1"
    assert fake.headers[0]["content-type"] == "application/json"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/prod", "http://127.0.0.1:9/prod/", "http://127.0.0.1:9/prod/orders",
                                 "http://127.0.0.1:9/prod/orders/"])
def test_the_url_endpoint_prints_and_its_base_post_to_the_same_place(url: str) -> None:
    """`txpipe endpoint` prints .../orders; `send --url` takes that as it is, or the base URL."""
    assert ApiClient(url).path == "/prod/orders"

"""`txpipe send` ids (txpipe_cli/send_ids.py, sender.plan): an order's id comes from its own content, so the same
orders get the same ids however the file is edited around them, and a re-run never doubles an order."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from lambdas.core.orders import OrderIn, parse_json, validate_items
from tests.support.sender import FakeApi, Sleeps, fake_client, order, order_file
from tests.support.strategies import to_json, valid_orders
from txpipe_cli.send_ids import CONTENT_FIELDS, dumps, order_id, stamp, with_id
from txpipe_cli.sender import ApiClient, plan, read_orders, send

ID = re.compile(r"send-([0-9a-f]{32})-(\d+)-(\d+)")


def ids_of(path: Path, pass_number: int = 1, **options: Any) -> list[Any]:
    valid, refused = plan(read_orders(path), pass_number, **options)
    assert refused == []
    return [p.order_id for p in valid]


def write_ndjson(path: Path, items: list[Any], newline: str = "\n") -> Path:
    path.write_bytes("".join(json.dumps(item) + newline for item in items).encode())
    return path


def written(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def mixed(count: int) -> list[dict[str, Any]]:
    """`count` orders, some of them identical (customer i % 5), as a POS export holds them."""
    return [order(1 + i % 5, qty=1 + i % 3) for i in range(count)]


def test_an_id_is_the_sha256_of_the_orders_canonical_json() -> None:
    """The documented form: send-<32 hex of sha256("order " + sorted, compact JSON, price as its plain value)>-
    <pass>-<n>, whatever the key order and number spelling in the file."""
    canonical = '{"customer_id":12,"qty":3,"retail_price":16.9,"type":"cheese"}'
    expected = "send-" + hashlib.sha256(b"order " + canonical.encode()).hexdigest()[:32] + "-1-1"
    item = parse_json(b'{"type": "cheese", "retail_price": 1.690e1, "qty": 3, "customer_id": 12}')
    [planned], _ = plan(order_file([item]), 1)
    assert planned.order_id == expected
    assert json.loads(planned.data) == {"customer_id": 12, "type": "cheese", "qty": 3, "retail_price": 16.9,
                                        "order_id": expected}


def test_the_canonical_json_holds_every_field_of_an_order_but_its_id() -> None:
    """A field added to OrderIn must be added to the id's content too, or two different orders would share ids."""
    assert set(CONTENT_FIELDS) == set(OrderIn.model_fields) - {"order_id"}
    assert list(CONTENT_FIELDS) == sorted(CONTENT_FIELDS)


@pytest.mark.parametrize("spellings", [("16.9", "16.90", "1.69e1", "169E-1"), ("100", "100.00", "1e2", "1.0E+2")])
def test_a_price_is_one_order_however_it_is_spelled(spellings: tuple[str, ...]) -> None:
    """The same price written differently is the same order: one content hash (n counts them as identical)."""
    items = [parse_json(f'{{"customer_id": 1, "type": "veggie", "qty": 2, "retail_price": {p}}}'.encode())
             for p in spellings]
    valid, _ = plan(order_file(items), 1)
    parts = [ID.fullmatch(p.order_id).groups() for p in valid]  # type: ignore[union-attr]
    assert {digest for digest, _, _ in parts} == {parts[0][0]}
    assert [n for _, _, n in parts] == [str(n) for n in range(1, len(spellings) + 1)]


def test_ids_are_the_same_on_every_run_and_distinct_within_a_file(tmp_path: Path) -> None:
    """Two reads of the same file give the same ids; identical orders get distinct ids, numbered 1, 2, 3 in file
    order (the 40 orders hold 15 different ones, the first of them on lines 1, 16 and 31)."""
    path = write_ndjson(tmp_path / "orders.ndjson", mixed(40))
    first = ids_of(path)
    assert first == ids_of(path)
    assert len(set(first)) == 40
    parts = [ID.fullmatch(i).groups() for i in first]  # type: ignore[union-attr]
    assert len({digest for digest, _, _ in parts}) == 15
    assert [parts[i] for i in (0, 15, 30)] == [(parts[0][0], "1", n) for n in ("1", "2", "3")]


def test_identical_orders_stay_distinct_and_stable(tmp_path: Path) -> None:
    """A, B, A, A: the three A's get A#1, A#2, A#3 (one hash, n = 1..3), B its own; appending another A adds A#4."""
    a, b = order(1), order(2)
    path = write_ndjson(tmp_path / "orders.ndjson", [a, b, a, a])
    ids = ids_of(path)
    parts = [ID.fullmatch(i).groups() for i in ids]  # type: ignore[union-attr]
    assert [p[2] for p in parts] == ["1", "1", "2", "3"]
    assert parts[0][0] == parts[2][0] == parts[3][0] != parts[1][0]
    write_ndjson(path, [a, b, a, a, a])
    assert ids_of(path) == [*ids, ids[0][:-1] + "4"]


EDITS: dict[str, Callable[[list[dict[str, Any]], Path], Path]] = {
    "append": lambda items, p: write_ndjson(p, [*items, order(99, qty=7)]),
    "crlf": lambda items, p: write_ndjson(p, items, newline="\r\n"),
    "bom-and-blank-lines": lambda items, p: written(
        p, b"\xef\xbb\xbf\n" + b"\n\n".join(json.dumps(i).encode() for i in items) + b"\n"),
    "pretty-array": lambda items, p: written(p, json.dumps(items, indent=4)),
    "compact-array": lambda items, p: written(p, json.dumps(items, separators=(",", ":"))),
    "keys-reordered": lambda items, p: write_ndjson(p, [dict(reversed(list(i.items()))) for i in items]),
    "numbers-respelled": lambda items, p: written(p, "\n".join(
        json.dumps(i).replace('"retail_price": 12.99', '"retail_price": 1.2990E1') for i in items)),
    "null-order-id": lambda items, p: write_ndjson(p, [{**i, "order_id": None} for i in items]),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_no_edit_around_the_orders_re_ids_them(tmp_path: Path, edit: Callable[..., Path]) -> None:
    """Appending, CRLF, a BOM and blank lines, a JSON array (pretty or compact) instead of NDJSON, keys in another
    order, numbers spelled otherwise, "order_id": null: every order sent before keeps its id."""
    items = mixed(20)
    before = ids_of(write_ndjson(tmp_path / "orders.ndjson", items))
    after = ids_of(edit(items, tmp_path / "edited.json"))
    assert after[:20] == before
    assert len(set(after)) == len(after)


def test_ndjson_converted_to_an_array_and_back_keeps_every_id(tmp_path: Path) -> None:
    """NDJSON -> JSON array -> NDJSON: the same ids at every step (positions differ: line vs index)."""
    items = mixed(9)
    ndjson = ids_of(write_ndjson(tmp_path / "a.ndjson", items))
    array = tmp_path / "b.json"
    array.write_text(json.dumps(items))
    assert read_orders(array).position_kind == "index" and ids_of(array) == ndjson
    assert ids_of(write_ndjson(tmp_path / "c.ndjson", json.loads(array.read_text()))) == ndjson


def test_editing_an_order_changes_its_id_and_no_other(tmp_path: Path) -> None:
    """Editing one order (qty 2 -> 3) gives it a new id; every other order, before and after it, keeps its own."""
    items = [order(i) for i in range(1, 8)]
    before = ids_of(write_ndjson(tmp_path / "orders.ndjson", items))
    items[3] = {**items[3], "qty": 3}
    after = ids_of(write_ndjson(tmp_path / "orders.ndjson", items))
    assert [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y] == [3]
    assert after[3] not in before


def test_reordering_sends_the_same_set_of_ids(tmp_path: Path) -> None:
    """Orders moved around (reversed, identical ones among them): the same set of ids, so nothing new is stored."""
    items = mixed(15)
    before = ids_of(write_ndjson(tmp_path / "orders.ndjson", items))
    assert set(ids_of(write_ndjson(tmp_path / "orders.ndjson", items[::-1]))) == set(before)


def test_each_pass_gets_its_own_ids(tmp_path: Path) -> None:
    """Pass 1, 2 and 3 of --repeat never share an id, each is the same on a re-run, and pass 1 is a plain send's."""
    path = write_ndjson(tmp_path / "orders.ndjson", mixed(6))
    passes = [ids_of(path, n) for n in (1, 2, 3)]
    assert len({i for ids in passes for i in ids}) == 18
    assert passes == [ids_of(path, n) for n in (1, 2, 3)]
    assert [ID.fullmatch(i).group(2) for i in passes[2]] == ["3"] * 6  # type: ignore[union-attr]


def test_ids_fit_the_api_rule() -> None:
    """Even for a huge pass and occurrence, an id is one the API accepts as a client's order_id (64 at most)."""
    made = order_id("f" * 64, 10**9 - 1, 10**15 - 1)
    assert len(made) <= 64
    [accepted] = validate_items(parse_json(json.dumps(order(1, order_id=made)).encode()))
    assert accepted.order_id == made


def test_given_ids_are_kept_and_input_is_not_mutated(tmp_path: Path) -> None:
    """An order's own order_id is kept in every pass; null counts as none; non-objects pass unchanged."""
    items = [order(1), order(2, order_id="client-2"), order(3, order_id=None)]
    snapshot = json.loads(json.dumps(items))
    path = write_ndjson(tmp_path / "orders.ndjson", items)
    for n in (1, 2):
        ids = ids_of(path, n)
        assert ids[1] == "client-2" and ID.fullmatch(ids[0]) and ID.fullmatch(ids[2]) and ids[0] != ids[2]
    assert items == snapshot
    assert stamp("not an order", "x") == "not an order"
    assert stamp(order(4), "x") == {**order(4), "order_id": "x"}


def test_stamping_an_object_that_repeats_a_key_keeps_both(tmp_path: Path) -> None:
    """{"qty": 1, "qty": 100} stamped still writes both qty keys (and a null order_id gives way to the id)."""
    path = tmp_path / "o.json"
    path.write_text('{"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 9, "order_id": null, "qty": 100}')
    [item] = read_orders(path).items
    assert dumps(stamp(item, "x")) == ('{"customer_id":1,"type":"cheese","qty":1,"retail_price":9,"qty":100,'
                                       '"order_id":"x"}')


@settings(max_examples=100, deadline=None)
@given(valid_orders(ids=None))
def test_the_posted_json_is_the_stamped_order_exactly(item: dict[str, Any]) -> None:
    """with_id splices the id into the order's JSON as writing the stamped order would; the price keeps its
    spelling on the way to the API."""
    stamped = stamp(item, "send-x")
    assert with_id(dumps(item).encode(), item, stamped) == dumps(stamped).encode()
    assert parse_json(dumps(stamped).encode()) == {**item, "order_id": "send-x"}
    assert dumps(stamped) == to_json(stamped)


def test_fresh_ids_are_random(tmp_path: Path) -> None:
    """--fresh-ids: random uuid4s that differ between runs; given ids are still kept."""
    path = write_ndjson(tmp_path / "orders.ndjson", [order(1), order(2, order_id="mine")])
    first, second = ids_of(path, fresh_ids=True), ids_of(path, fresh_ids=True)
    assert first[1] == second[1] == "mine"
    assert first[0] != second[0]
    assert str(uuid.UUID(first[0])) == first[0]


def test_repeat_posts_each_pass_once(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """--repeat 3: three passes reach the API, 6 distinct ids stored; the order's own id is stored once."""
    api_client, fake, _ = client
    result = send(api_client, order_file([order(1), order(2), order(3, order_id="own")]), repeat=3)
    assert (result.orders, result.sent, result.accepted, result.requests) == (9, 9, 9, 3)
    assert len(fake.stored) == 7
    assert fake.received["own"] == 3


# --- re-sending an edited file --------------------------------------------------------------------


def stored_contents(fake: FakeApi) -> Counter[tuple[Any, ...]]:
    return Counter((o["customer_id"], o["type"], o["qty"], str(o["retail_price"])) for o in fake.stored.values())


def test_sent_appended_and_sent_again_stores_one_more(client: tuple[ApiClient, FakeApi, Sleeps],
                                                      tmp_path: Path) -> None:
    """The issue's case: 1,000 orders sent, one appended, sent again: 1,001 stored (it was 2,001). Then the
    file as a CRLF JSON array: still 1,001; one order edited: 1,002 (the old one stays); reversed: 1,002."""
    api_client, fake, _ = client
    items = mixed(1000)
    path = write_ndjson(tmp_path / "orders.ndjson", items)
    assert send(api_client, read_orders(path)).accepted == 1000
    assert len(fake.stored) == 1000 and stored_contents(fake) == Counter(
        (i["customer_id"], "cheese", i["qty"], "12.99") for i in items)

    items.append(order(6))
    assert send(api_client, read_orders(write_ndjson(path, items))).accepted == 1001
    assert len(fake.stored) == 1001

    path.write_bytes(json.dumps(items, indent=2).replace("\n", "\r\n").encode())
    assert send(api_client, read_orders(path)).accepted == 1001
    assert len(fake.stored) == 1001

    items[500] = {**items[500], "qty": 9}
    assert send(api_client, read_orders(write_ndjson(path, items))).accepted == 1001
    assert len(fake.stored) == 1002
    assert send(api_client, read_orders(write_ndjson(path, items[::-1]))).accepted == 1001
    assert len(fake.stored) == 1002


# --- re-running after an interruption -------------------------------------------------------------

ORDERS = 200


def interrupted_then_rerun(tmp_path: Path, fresh_ids: bool) -> tuple[FakeApi, list[dict[str, Any]]]:
    """Send 200 orders in requests of 20; the API dies after 4 requests; heal it and send the file again."""
    path = write_ndjson(tmp_path / "orders.ndjson", [order(1 + i % 7) for i in range(ORDERS)])
    results = []
    with fake_client() as (api_client, fake, _):
        fake.fail_after = 4
        first = send(api_client, read_orders(path), batch_size=20, fresh_ids=fresh_ids)
        assert first.interrupted and "failed 4 times" in first.interrupted
        assert not first.cancelled
        fake.fail_after = None
        second = send(api_client, read_orders(path), batch_size=20, fresh_ids=fresh_ids)
        results = [first.to_dict(), second.to_dict()]
    return fake, results


def test_rerun_after_interruption_stores_every_order_once(tmp_path: Path) -> None:
    """Interrupted after 80 accepted, then re-run: the fake holds each of the 200 orders exactly once (7 distinct
    orders, each as many times as the file holds it)."""
    fake, (first, second) = interrupted_then_rerun(tmp_path, fresh_ids=False)
    assert (first["accepted"], first["refused"], first["not_sent"], first["sent"]) == (80, 0, 120, 80)
    assert second["accepted"] == ORDERS and second["interrupted"] is None
    assert len(fake.stored) == ORDERS
    assert stored_contents(fake) == Counter((1 + i % 7, "cheese", 1, "12.99") for i in range(ORDERS))
    assert max(fake.received.values()) == 2  # the first 80 were delivered twice and stored once


def test_rerun_with_fresh_ids_doubles(tmp_path: Path) -> None:
    """The opt-out shows what the ids protect against: --fresh-ids twice stores the first 80 again."""
    fake, (first, second) = interrupted_then_rerun(tmp_path, fresh_ids=True)
    assert first["accepted"] == 80 and second["accepted"] == ORDERS
    assert len(fake.stored) == ORDERS + 80


def test_ctrl_c_mid_send_reports_counts(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """Ctrl-C after the second request: the counts so far, cancelled, and the rest not sent."""
    api_client, fake, _ = client
    calls: list[int] = []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    result = send(api_client, order_file([order(i) for i in range(1, 11)]), batch_size=3, progress=progress)
    assert result.cancelled is True
    assert result.interrupted == "interrupted (Ctrl-C)"
    assert (result.orders, result.accepted, result.refused, result.not_sent, result.requests) == (10, 6, 0, 4, 2)
    assert len(fake.stored) == 6


def test_ctrl_c_during_a_request_counts_it_not_sent(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """Ctrl-C while a request waits for its answer: that request's orders are counted as not sent."""
    api_client, _, _ = client
    posts = 0

    class Interrupted:
        def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
            nonlocal posts
            posts += 1
            if posts == 2:
                raise KeyboardInterrupt
            return api_client.post(body)

    result = send(Interrupted(), order_file([order(i) for i in range(1, 6)]), batch_size=2)  # type: ignore[arg-type]
    assert (result.accepted, result.sent, result.not_sent, result.cancelled) == (2, 2, 3, True)


def scoped_ids(path: Path, scope: str | None = None) -> list[Any]:
    """The ids `txpipe send` gives: the file's name without its extension is the scope, unless one is given."""
    import dataclasses

    orders = dataclasses.replace(read_orders(path), id_scope=path.stem if scope is None else scope)
    valid, refused = plan(orders, 1)
    assert refused == []
    return [p.order_id for p in valid]


def test_two_files_holding_the_same_order_are_two_orders(tmp_path: Path) -> None:
    """Monday's and Tuesday's exports may each hold a cheese pizza for customer 12: both are stored (the scope is
    the file's name), where content alone would have kept one of them."""
    same = [order(12)]
    monday, tuesday = write_ndjson(tmp_path / "monday.ndjson", same), write_ndjson(tmp_path / "tuesday.ndjson", same)
    assert scoped_ids(monday) != scoped_ids(tuesday)
    assert ids_of(monday) == ids_of(tuesday)  # what happened without a scope: one order


def test_a_file_converted_keeps_its_ids_and_a_renamed_one_keeps_them_with_its_old_scope(tmp_path: Path) -> None:
    items = mixed(20)
    ndjson = write_ndjson(tmp_path / "orders.ndjson", items)
    array = written(tmp_path / "orders.json", json.dumps(items, indent=2))
    assert scoped_ids(array) == scoped_ids(ndjson)  # same name, other format: the same ids
    renamed = written(tmp_path / "orders-2026-12.json", array.read_bytes())
    assert scoped_ids(renamed) != scoped_ids(array)
    assert scoped_ids(renamed, scope="orders") == scoped_ids(array)

"""`txpipe send` ids (txpipe_cli/sender.py): the same file gives the same ids, so a re-run never doubles."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.core.orders import ORDER_ID_PATTERN
from tests.unit.test_sender import FakeApi, Sleeps, fake_client, order, order_file
from txpipe_cli.sender import ApiClient, order_id_for, plan, read_orders, send, stamp


@pytest.fixture
def client() -> Iterator[tuple[ApiClient, FakeApi, Sleeps]]:
    with fake_client() as made:
        yield made


def ids_of(path: Path, pass_number: int = 1, **options: Any) -> list[Any]:
    valid, refused = plan(read_orders(path), pass_number, **options)
    assert refused == []
    return [p.order_id for p in valid]


def write_ndjson(path: Path, items: list[Any]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_ids_are_the_same_on_every_run_of_the_same_file(tmp_path: Path) -> None:
    """Two reads of the same file give the same ids; each is send-<24 hex>-<pass>-<position>."""
    path = write_ndjson(tmp_path / "orders.ndjson", [order(i) for i in range(1, 6)])
    first, second = ids_of(path), ids_of(path)
    assert first == second
    digest = read_orders(path).digest
    assert first == [f"send-{digest[:24]}-1-{line}" for line in range(1, 6)]


def test_each_pass_gets_its_own_ids(tmp_path: Path) -> None:
    """Pass 1, 2 and 3 of --repeat never share an id, and each pass is the same on a re-run."""
    path = write_ndjson(tmp_path / "orders.ndjson", [order(i) for i in range(1, 6)])
    passes = [ids_of(path, n) for n in (1, 2, 3)]
    assert len({i for ids in passes for i in ids}) == 15
    assert passes == [ids_of(path, n) for n in (1, 2, 3)]


def test_a_file_differing_in_one_byte_gets_other_ids(tmp_path: Path) -> None:
    """Changing one byte (here a trailing newline) changes every id of the file."""
    items = [order(i) for i in range(1, 4)]
    one = write_ndjson(tmp_path / "one.ndjson", items)
    other = tmp_path / "other.ndjson"
    other.write_bytes(one.read_bytes() + b"\n")
    assert read_orders(other).items == read_orders(one).items
    assert not set(ids_of(one)) & set(ids_of(other))


def test_ids_fit_the_api_rule() -> None:
    """Even for a huge pass number and position, an id is 1..64 printable ASCII characters."""
    made = order_id_for("f" * 64, 10**6, 10**12)
    assert re.fullmatch(ORDER_ID_PATTERN, made)
    assert len(made) <= 64


def test_given_ids_are_kept_and_input_is_not_mutated(tmp_path: Path) -> None:
    """An order's own order_id is kept in every pass; null counts as none; non-objects pass unchanged."""
    items = [order(1), order(2, order_id="client-2"), order(3, order_id=None)]
    snapshot = json.loads(json.dumps(items))
    path = write_ndjson(tmp_path / "orders.ndjson", items)
    digest = read_orders(path).digest
    for n in (1, 2):
        assert ids_of(path, n) == [order_id_for(digest, n, 1), "client-2", order_id_for(digest, n, 3)]
    assert items == snapshot
    assert stamp("not an order", "x") == "not an order"
    assert stamp(order(4), "x") == {**order(4), "order_id": "x"}


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
    """Interrupted after 80 accepted, then re-run: the fake holds each of the 200 orders exactly once."""
    fake, (first, second) = interrupted_then_rerun(tmp_path, fresh_ids=False)
    assert (first["accepted"], first["refused"], first["not_sent"], first["sent"]) == (80, 0, 120, 80)
    assert second["accepted"] == ORDERS and second["interrupted"] is None
    assert len(fake.stored) == ORDERS
    assert sorted(int(i.rsplit("-", 1)[1]) for i in fake.stored) == list(range(1, ORDERS + 1))
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

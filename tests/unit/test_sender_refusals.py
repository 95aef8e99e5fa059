"""`txpipe send` refusals (txpipe_cli/sender.py): invalid orders are refused by position, not holding back others."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.sender import FakeApi, Sleeps, order, order_file
from txpipe_cli.sender import ApiClient, Refusal, check, read_orders, send, write_rejects

QTY_REASON = "Input should be less than or equal to 100"
SEND_ID = r"send-[0-9a-f]{32}-%d-%d"  # pass, which of the identical orders (txpipe_cli/send_ids.py)


def refused_at(result: Any) -> list[tuple[int, str, list[Any]]]:
    return [(r.position, r.position_kind, [e["field"] for e in r.errors]) for r in result.refusals]


def test_invalid_ndjson_lines_are_refused_by_line_and_the_rest_accepted(
        client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """Bad orders on lines 3 and 6 (blank line 2 counted) are refused there; the 4 valid ones are stored."""
    api_client, fake, _ = client
    path = tmp_path / "orders.ndjson"
    path.write_text("\n".join([json.dumps(order(1)), "", json.dumps(order(2, qty=101)), json.dumps(order(3)),
                               json.dumps(order(4)), json.dumps(order(5, type="Cheese", retail_price="9.99")),
                               json.dumps(order(6))]) + "\n")
    result = send(api_client, read_orders(path), batch_size=2)
    assert (result.orders, result.accepted, result.refused, result.not_sent) == (6, 4, 2, 0)
    assert refused_at(result) == [(3, "line", ["qty"]), (6, "line", ["type", "retail_price"])]
    assert result.refusals[0].errors == [{"field": "qty", "reason": QTY_REASON}]
    assert {item["customer_id"] for item in fake.stored.values()} == {1, 3, 4, 6}
    assert [len(b) for b in fake.bodies] == [2, 2]  # refused orders never reach the API
    refusal = result.to_dict()["refusals"][0]
    assert re.fullmatch(SEND_ID % (1, 1), refusal.pop("order_id"))
    assert refusal == {"pass": 1, "position": 3, "position_kind": "line",
                       "errors": [{"field": "qty", "reason": QTY_REASON}]}
    assert send(api_client, read_orders(path)).refusals[0].order_id == result.refusals[0].order_id  # stable


def test_invalid_array_items_are_refused_by_index(client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """In a JSON array, refusals name the 0-based index; non-objects and a bad order_id are refused too."""
    api_client, fake, _ = client
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([order(1), "not an order", order(2, order_id="x" * 65), order(3, extra=1), order(4)]))
    result = send(api_client, read_orders(path))
    assert refused_at(result) == [(1, "index", [None]), (2, "index", ["order_id"]), (3, "index", ["extra"])]
    assert result.refusals[0].order_id is None
    assert result.refusals[1].order_id == "x" * 65
    assert (result.accepted, result.refused) == (2, 3)
    assert len(fake.stored) == 2


def test_a_lone_object_is_index_0(client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """A file holding one invalid object: refused at index 0, nothing posted."""
    api_client, fake, _ = client
    path = tmp_path / "one.json"
    path.write_text(json.dumps(order(0)))
    result = send(api_client, read_orders(path))
    assert refused_at(result) == [(0, "index", ["customer_id"])]
    assert fake.posts == []


def test_duplicate_order_id_refuses_the_later_copy(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """The same order_id twice in a file: the first is sent, the later copy refused naming the first."""
    api_client, fake, _ = client
    result = send(api_client, order_file([order(1, order_id="a"), order(2), order(3, order_id="a")]))
    assert refused_at(result) == [(2, "index", ["order_id"])]
    assert result.refusals[0].errors[0]["reason"] == "duplicate order_id in the file (also at index 0)"
    assert fake.stored["a"]["customer_id"] == 1 and len(fake.stored) == 2


def test_repeat_refuses_an_invalid_order_in_every_pass(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """With --repeat 2 an invalid order counts once per pass, each with that pass's id."""
    api_client, _, _ = client
    result = send(api_client, order_file([order(1), order(2, qty=0)]), repeat=2)
    assert (result.orders, result.accepted, result.refused) == (4, 2, 2)
    assert [r.pass_number for r in result.refusals] == [1, 2]
    first, second = (r.order_id for r in result.refusals)
    assert re.fullmatch(SEND_ID % (1, 1), first) and re.fullmatch(SEND_ID % (2, 1), second)
    assert first[:-4] == second[:-4]  # the same order: one content hash, another pass


# --- a server of another version still answers 400 ------------------------------------------------


def test_server_400_naming_indexes_is_mapped_back_and_the_rest_resent(
        client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """The server refuses customer 13 (a rule the client lacks): those are refused by file position, the rest
    of their request re-sent once and stored."""
    api_client, fake, _ = client
    fake.extra_rule = lambda item: "unknown customer_id" if item["customer_id"] == 13 else None
    items = [order(1), order(2), order(13), order(4), order(13), order(6), order(7, qty=0)]
    result = send(api_client, order_file(items, kind="line"), batch_size=4)
    assert refused_at(result) == [(3, "line", ["customer_id"]), (5, "line", ["customer_id"]), (7, "line", ["qty"])]
    assert result.refusals[0].errors == [{"field": "customer_id", "reason": "unknown customer_id"}]
    assert (result.accepted, result.refused, result.not_sent, result.sent, result.requests) == (4, 3, 0, 6, 4)
    assert [[i["customer_id"] for i in b] for b in fake.bodies] == [[1, 2, 13, 4], [1, 2, 4], [13, 6], [6]]
    assert sorted(i["customer_id"] for i in fake.stored.values()) == [1, 2, 4, 6]


def test_capped_400_refuses_the_whole_request(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A 400 listing 1 of 2 errors (error_count 2) cannot say which items are good: the request is refused whole."""
    api_client, fake, _ = client
    fake.extra_rule = lambda item: "unknown customer_id" if item["customer_id"] > 10 else None
    fake.cap = 1
    result = send(api_client, order_file([order(1), order(11), order(12), order(4), order(5)]), batch_size=4)
    assert (result.accepted, result.refused, result.requests) == (1, 4, 2)
    assert [r.position for r in result.refusals] == [0, 1, 2, 3]
    assert result.refusals[0].errors[0]["field"] is None
    assert "whole request (400): unknown customer_id" in result.refusals[0].errors[0]["reason"]
    assert [i["customer_id"] for i in fake.stored.values()] == [5]


def test_400_without_an_index_refuses_the_whole_request(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A 400 about the request as a whole (index null) refuses all of its orders and sends on."""
    api_client, fake, _ = client
    fake.forced.append(400)
    result = send(api_client, order_file([order(i) for i in range(1, 6)]), batch_size=2)
    assert (result.accepted, result.refused, result.not_sent) == (3, 2, 0)
    assert result.refusals[1].errors == [{"field": None, "reason": "the API refused the whole request (400): "
                                                                   "forced 400"}]


@pytest.mark.parametrize("index", [None, 2, -1, "0"])
def test_400_naming_no_item_of_the_request_refuses_it_whole(client: tuple[ApiClient, FakeApi, Sleeps],
                                                            index: Any) -> None:
    """An error whose index is null, out of range or not an int says nothing of which item: refused whole."""
    api_client, fake, _ = client
    fake.forced.append((400, {"errors": [{"index": 0, "field": "qty", "reason": "bad"},
                                         {"index": index, "field": None, "reason": "body"}]}))
    result = send(api_client, order_file([order(1), order(2)]))
    assert (result.accepted, result.refused, len(fake.posts)) == (0, 2, 1)
    assert result.refusals[1].errors == [{"field": None, "reason": "the API refused the whole request (400): "
                                                                   "bad; body"}]


def test_a_resent_request_refused_again_stays_refused(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """The re-send happens once: refused again, its orders are counted refused (not sent a third time)."""
    api_client, fake, _ = client
    fake.extra_rule = lambda item: "no" if item["customer_id"] == 2 else None
    status = iter([None, 400])

    original = fake.answer

    def flaky(path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        answer = original(path, raw, headers)
        if next(status, None) == 400:
            fake.stored.clear()
            return 400, {"errors": [{"index": 1, "field": "qty", "reason": "second opinion"}]}
        return answer

    fake.answer = flaky  # type: ignore[method-assign]
    result = send(api_client, order_file([order(1), order(2), order(3)]))
    assert len(fake.posts) == 2
    assert (result.accepted, result.refused, result.requests) == (0, 3, 2)
    assert [r.errors[0]["reason"] for r in result.refusals] == [  # in file order
        "the API refused the whole request (400): second opinion", "no", "second opinion"]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_4xx_stops_the_send(client: tuple[ApiClient, FakeApi, Sleeps], status: int) -> None:
    """A 401/403/404 is about the URL or key, not the orders: the send stops, nothing counted as refused."""
    api_client, fake, _ = client
    fake.forced.append(status)
    result = send(api_client, order_file([order(i) for i in range(1, 6)]), batch_size=2)
    assert (result.accepted, result.refused, result.not_sent, result.cancelled) == (0, 0, 5, False)
    assert result.interrupted and f"answered {status}" in result.interrupted
    assert len(fake.posts) == 1


# --- --rejects ------------------------------------------------------------------------------------


def test_rejects_hold_the_refused_orders_as_in_the_file_with_their_ids(
        client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """--rejects: one NDJSON line per refused order, as in the file plus its order_id; fixed and re-sent, the
    ids are the same, so the fixed orders are stored once."""
    api_client, fake, _ = client
    path = tmp_path / "orders.ndjson"
    lines = [order(1), order(2, qty=500), "oops", order(4, order_id="own", type="Supreme")]
    path.write_text("".join(json.dumps(item) + "\n" for item in lines))
    result = send(api_client, read_orders(path))
    rejects = tmp_path / "out" / "rejects.ndjson"
    rejects.parent.mkdir()
    write_rejects(rejects, result.refusals)
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assigned = result.refusals[0].order_id
    assert re.fullmatch(SEND_ID % (1, 1), assigned)
    assert written == [{**order(2, qty=500), "order_id": assigned}, "oops", lines[3]]
    assert list(rejects.parent.iterdir()) == [rejects]  # no temp file left behind

    rejects.write_text(json.dumps({**written[0], "qty": 5}) + "\n" + json.dumps({**written[2], "type": "supreme"}))
    fixed = send(api_client, read_orders(rejects))
    assert (fixed.accepted, fixed.refused) == (2, 0)
    assert fake.stored[assigned]["qty"] == 5 and "own" in fake.stored


def test_rejects_replace_an_old_file_atomically(tmp_path: Path) -> None:
    """An existing rejects file is replaced whole; a failure while writing leaves it and no temp file."""
    rejects = tmp_path / "rejects.ndjson"
    rejects.write_text("old\n")
    refusal = Refusal(1, 0, "index", "a", [], {"order_id": "a"})
    write_rejects(rejects, [refusal])
    assert rejects.read_text() == '{"order_id": "a"}\n'
    with pytest.raises(TypeError):
        write_rejects(rejects, [refusal, Refusal(1, 1, "index", None, [], object())])
    assert rejects.read_text() == '{"order_id": "a"}\n'
    assert list(tmp_path.iterdir()) == [rejects]


def test_check_gives_each_order_its_own_verdict_across_groups() -> None:
    """check() groups 500 orders a call; bad ones at the edges of groups still get exactly their own errors."""
    bad = {0: {"qty": 0}, 499: {"type": "Cheese"}, 500: {"customer_id": 0}, 1001: {"retail_price": 1.234}}
    items = [order(1 + i % 7, order_id=f"c-{i}", **bad.get(i, {})) for i in range(1002)]
    verdicts = check([json.dumps(item).encode() for item in items])
    assert {i: [e["field"] for e in v] for i, v in enumerate(verdicts) if isinstance(v, list)} == {
        0: ["qty"], 499: ["type"], 500: ["customer_id"], 1001: ["retail_price"]}
    assert [v.order_id for v in verdicts if not isinstance(v, list)] == [f"c-{i}" for i in range(1002) if i not in bad]


def test_an_item_that_is_an_array_is_refused_even_if_its_orders_are_valid() -> None:
    """An array inside the file's array is not an order: refused as the API would refuse it in a request."""
    verdicts = check([json.dumps([order(1)]).encode(), json.dumps(order(2)).encode()])
    assert verdicts[0] == [{"field": None, "reason": "order must be a JSON object"}]
    assert not isinstance(verdicts[1], list) and verdicts[1].customer_id == 2


def test_an_order_repeating_a_key_is_refused_and_written_back_as_it_was(
        client: tuple[ApiClient, FakeApi, Sleeps], tmp_path: Path) -> None:
    """{"qty": 1, "qty": 100} in a file is refused by its line naming qty (never posted as qty 100); --rejects
    writes it with both keys, for the operator to pick one."""
    api_client, fake, _ = client
    path = tmp_path / "orders.ndjson"
    twice = '{"customer_id": 2, "type": "cheese", "qty": 1, "retail_price": 12.99, "qty": 100}'
    path.write_text(json.dumps(order(1)) + "\n" + twice + "\n")
    result = send(api_client, read_orders(path))
    assert refused_at(result) == [(2, "line", ["qty"])]
    assert "more than once" in result.refusals[0].errors[0]["reason"]
    assert [i["customer_id"] for i in fake.stored.values()] == [1]
    rejects = tmp_path / "rejects.ndjson"
    write_rejects(rejects, result.refusals)
    assert rejects.read_text() == twice[:-1] + f', "order_id": "{result.refusals[0].order_id}"}}\n'

"""`txpipe send` with NDJSON lines that are not JSON (issue 16 item 5): each is refused by its line like any invalid
order, the good lines are sent, --rejects writes it as it was; a file that is one broken JSON document is still
refused whole, naming where it broke."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.support.sender import FakeApi, order, served_for_send
from txpipe_cli.app import app
from txpipe_cli.order_file import Unreadable, read_orders

runner = CliRunner()
BROKEN = '{"customer_id": 4, "type": "cheese" "qty": 1, "retail_price": 9.99}'  # a comma missing


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApi, str]]:
    with served_for_send(monkeypatch, {}) as served:
        yield served


def send(url: str, path: Path, *args: str, code: int) -> Result:
    result = runner.invoke(app, ["send", str(path), "--url", url, *args])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return result


def ndjson(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_bad_line_is_refused_and_the_good_ones_are_sent(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """Line 4 is not JSON: lines 1-3 and 5 are stored, line 4 refused with the parser's reason, exit 1."""
    fake, url = api
    path = ndjson(tmp_path / "orders.ndjson", *(json.dumps(order(n)) for n in (1, 2, 3)), BROKEN,
                  json.dumps(order(5)))
    result = send(url, path, code=1)
    assert "5 orders: accepted 4, refused 1, not sent 0" in result.stdout
    assert "refused line 4: not valid JSON: Expecting ',' delimiter (column 37)" in result.stderr
    assert "1 of 5 orders refused and not stored" in result.stderr
    assert sorted(item["customer_id"] for item in fake.stored.values()) == [1, 2, 3, 5]


def test_json_lists_it_by_line_without_an_order_id(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    _, url = api
    path = ndjson(tmp_path / "orders.ndjson", json.dumps(order(1)), "", "oops")
    data = json.loads(send(url, path, "--json", code=1).stdout)
    assert (data["orders"], data["accepted"], data["refused"], data["not_sent"]) == (2, 1, 1, 0)
    assert data["refusals"] == [{"pass": 1, "position": 3, "position_kind": "line", "order_id": None,
                                 "errors": [{"field": None, "reason": "not valid JSON: Expecting value (column 1)"}]}]


def test_rejects_holds_the_line_as_it_was_among_the_other_refusals(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """--rejects: refused orders in file order, an invalid order with its id, the bad line's text unchanged;
    fixed there, that file sends as it is (the fixed line gets its id then)."""
    fake, url = api
    path = ndjson(tmp_path / "orders.ndjson", json.dumps(order(1, qty=0)), BROKEN, json.dumps(order(3)))
    rejects = tmp_path / "rejects.ndjson"
    send(url, path, "--rejects", str(rejects), code=1)
    first, second = rejects.read_text().splitlines()
    assert json.loads(first)["qty"] == 0 and json.loads(first)["order_id"].startswith("send-")
    assert second == BROKEN
    rejects.write_text(json.dumps({**json.loads(first), "qty": 1}) + "\n" + BROKEN.replace('"cheese"', '"cheese",')
                       + "\n")
    send(url, rejects, code=0)
    assert sorted(item["customer_id"] for item in fake.stored.values()) == [1, 3, 4]


def test_each_repeat_pass_refuses_it_again(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    _, url = api
    path = ndjson(tmp_path / "orders.ndjson", json.dumps(order(1)), "{")
    data = json.loads(send(url, path, "--repeat", "2", "--json", code=1).stdout)
    assert (data["orders"], data["accepted"], data["refused"]) == (4, 2, 2)
    assert [(r["pass"], r["position"]) for r in data["refusals"]] == [(1, 2), (2, 2)]


def test_a_broken_json_document_is_refused_whole(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """A JSON array broken on line 3, even with a line that parses alone (the last object), is not NDJSON:
    nothing is sent and the reason says where it broke."""
    fake, url = api
    path = tmp_path / "orders.json"
    path.write_text("[\n" + json.dumps(order(1)) + ",\n" + BROKEN + ",\n" + json.dumps(order(3)) + "\n]\n")
    result = send(url, path, code=1)
    assert "is neither JSON nor NDJSON: Expecting ',' delimiter: line 3 column 37" in " ".join(result.stderr.split())
    assert fake.stored == {}


def test_lines_are_counted_as_editors_count_them(tmp_path: Path) -> None:
    """CRLF and CR end lines; U+2028 and U+0085 inside a line do not (JSON allows them in a string)."""
    path = tmp_path / "orders.ndjson"
    path.write_bytes(b'{"a": "x\xe2\x80\xa8y"}\r\n{"b": 1}\r{"c": "\xc2\x85"}\n\noops\n')
    read = read_orders(path)
    assert read.positions == [1, 2, 3, 5]
    assert read.items[:3] == [{"a": "x\u2028y"}, {"b": 1}, {"c": "\x85"}]
    assert read.items[3] == Unreadable("oops", "not valid JSON: Expecting value (column 1)")

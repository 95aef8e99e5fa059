"""`txpipe send` as an operator runs it (txpipe_cli/commands/orders.py): exit codes, --json, --rejects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support.sender import FakeApi, order, served_for_send
from txpipe_cli import sender
from txpipe_cli.app import app

runner = CliRunner()
KEYS = {"orders", "sent", "requests", "accepted", "refused", "not_sent", "refusals", "interrupted"}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApi, str]]:
    with served_for_send(monkeypatch, {"x-api-key": "test-key"}) as served:
        yield served


def write(path: Path, items: list[Any]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def run(url: str, path: Path, *args: str, code: int) -> Result:
    result = runner.invoke(app, ["send", str(path), "--url", url, *args])
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return result


def test_everything_accepted_exits_0(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """All valid: exit 0, the JSON has every documented key, the target's API key header went along."""
    fake, url = api
    path = write(tmp_path / "orders.ndjson", [order(i) for i in range(1, 8)])
    result = run(url, path, "--batch", "3", "--json", code=0)
    data = json.loads(result.stdout)
    assert set(data) == KEYS
    assert {k: data[k] for k in KEYS - {"refusals"}} == {
        "orders": 7, "sent": 7, "requests": 3, "accepted": 7, "refused": 0, "not_sent": 0, "interrupted": None}
    assert result.stderr == ""
    assert len(fake.stored) == 7
    assert all(h["x-api-key"] == "test-key" for h in fake.headers)


def test_human_output_counts(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """Without --json, one line of counts on stdout."""
    _, url = api
    path = write(tmp_path / "orders.ndjson", [order(1), order(2)])
    assert "2 orders: accepted 2, refused 0, not sent 0" in run(url, path, code=0).stdout


def test_refused_orders_exit_1_after_the_valid_ones_are_stored(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """One bad line: the others are stored, the refusal printed by line and field, exit 1; --rejects holds it."""
    fake, url = api
    path = write(tmp_path / "orders.ndjson", [order(1), order(2, qty=101), order(3)])
    rejects = tmp_path / "rejects.ndjson"
    result = run(url, path, "--rejects", str(rejects), code=1)
    assert "3 orders: accepted 2, refused 1, not sent 0" in result.stdout
    assert "refused line 2: field qty: Input should be less than or equal to 100" in result.stderr
    assert f"1 of 3 orders refused and not stored (fix them in {rejects}" in result.stderr
    assert sorted(i["customer_id"] for i in fake.stored.values()) == [1, 3]
    [line] = rejects.read_text().splitlines()
    written = json.loads(line)
    assert written == {**order(2, qty=101), "order_id": written["order_id"]}
    assert written["order_id"].startswith("send-") and written["order_id"].endswith("-1-1")
    run(url, path, "--rejects", str(rejects), code=1)
    assert json.loads(rejects.read_text()) == written  # the same id on every run


def test_refused_json_goes_to_stdout_and_the_reason_to_stderr(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """--json with a refusal: the JSON (with the refusal) on stdout, exit 1, one line on stderr."""
    _, url = api
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([order(1), order(2, type="Cheese")]))
    result = run(url, path, "--json", code=1)
    data = json.loads(result.stdout)
    assert (data["accepted"], data["refused"]) == (1, 1)
    assert data["refusals"][0]["position"] == 1 and data["refusals"][0]["position_kind"] == "index"
    assert data["refusals"][0]["errors"][0]["field"] == "type"
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--rejects FILE writes them out" in result.stderr


def test_more_than_ten_refusals_print_ten(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """Twelve refusals: ten lines of detail and a count of the rest."""
    _, url = api
    path = write(tmp_path / "orders.ndjson", [order(i, qty=0) for i in range(1, 13)])
    result = run(url, path, code=1)
    assert result.stderr.count("refused line") == 10
    assert "... and 2 more refused" in result.stderr


def test_no_refusals_create_no_rejects_file(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """--rejects with nothing refused writes nothing and leaves an existing file alone."""
    _, url = api
    path = write(tmp_path / "orders.ndjson", [order(1)])
    run(url, path, "--rejects", str(tmp_path / "absent.ndjson"), code=0)
    assert not (tmp_path / "absent.ndjson").exists()
    kept = tmp_path / "kept.ndjson"
    kept.write_text("earlier\n")
    run(url, path, "--rejects", str(kept), code=0)
    assert kept.read_text() == "earlier\n"


def test_api_down_exits_1_with_counts(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    """The API fails for good after one request: exit 1, the JSON counts on stdout, the reason on stderr."""
    fake, url = api
    fake.fail_after = 1
    path = write(tmp_path / "orders.ndjson", [order(i) for i in range(1, 6)])
    result = run(url, path, "--batch", "2", "--json", code=1)
    data = json.loads(result.stdout)
    assert (data["accepted"], data["refused"], data["not_sent"]) == (2, 0, 3)
    assert "failed 4 times" in data["interrupted"]
    [line] = result.stderr.strip().splitlines()
    assert "failed 4 times" in line and "3 orders not sent" in line


def test_ctrl_c_exits_130_with_counts(api: tuple[FakeApi, str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the third request: exit 130, counts printed, and the note that a re-run is safe."""
    _, url = api
    posts = 0
    real_post = sender.ApiClient.post

    def post(self: sender.ApiClient, body: bytes) -> tuple[int, dict[str, Any]]:
        nonlocal posts
        posts += 1
        if posts == 3:
            raise KeyboardInterrupt
        return real_post(self, body)

    monkeypatch.setattr(sender.ApiClient, "post", post)
    path = write(tmp_path / "orders.ndjson", [order(i) for i in range(1, 8)])
    result = run(url, path, "--batch", "2", code=130)
    assert "7 orders: accepted 4, refused 0, not sent 3" in result.stdout
    assert "Re-running the same command is safe" in result.stderr
    assert "interrupted (Ctrl-C); 3 orders not sent" in result.stderr

    posts = 0
    data = json.loads(run(url, path, "--batch", "2", "--json", code=130).stdout)
    assert data["interrupted"] == "interrupted (Ctrl-C)" and data["not_sent"] == 3

    posts = 0
    assert "--fresh-ids would store the accepted orders again" in run(
        url, path, "--batch", "2", "--fresh-ids", code=130).stderr


def test_help_explains_the_ids() -> None:
    """--help says how ids are made (content, the file's name, its scope option) and that --fresh-ids is not
    safe to re-run."""
    result = runner.invoke(app, ["send", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "own content" in text and "--id-scope" in text and "keep their ids" in text
    assert "--fresh-ids" in text and "NOT safe to re-run" in text

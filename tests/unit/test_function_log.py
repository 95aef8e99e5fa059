"""Each function's one structured line (lambdas/core/log.py): Powertools' keys, then the figures; one JSON line on
stdout on Lambda, a record for the local runtime's log elsewhere; what each handler says; never an order."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from lambdas import ingest, ops, refresh, store, sync
from lambdas.core import contract, log
from lambdas.core.queue import QueueError
from lambdas.core.store import StoreResult
from lambdas.core.sync import SyncResult


class Queue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[str] = []
        self.fail = fail

    def send_batch(self, bodies: list[str]) -> None:
        if self.fail:
            raise QueueError("the queue is away")
        self.sent += bodies


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The structured records the functions log, as the local runtime's log receives them."""
    caplog.set_level(logging.DEBUG, logger=log.LOGGER_NAME)
    records: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(record.getMessage()))

    handler = Collect()
    logging.getLogger(log.LOGGER_NAME).addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger(log.LOGGER_NAME).removeHandler(handler)


def test_a_line_has_powertools_keys_first_then_the_figures() -> None:
    at = datetime(2026, 12, 1, 22, 30, 58, 24_999, tzinfo=UTC)
    record = log.line("sync", "moved 600 orders", at=at, moved=600, seconds=0.139, rate=float("nan"),
                      views=("a", "b"), trigger="  two\nlines ")
    assert list(record)[:4] == ["level", "timestamp", "service", "message"]
    assert record == {"level": "INFO", "timestamp": "2026-12-01T22:30:58.024Z", "service": "sync",
                      "message": "moved 600 orders", "moved": 600, "seconds": 0.139, "rate": None,
                      "views": ["a", "b"], "trigger": "two lines"}
    assert log.line("ops", "status", level=log.DEBUG)["level"] == "DEBUG"
    assert len(log.line("x", "y" * 1000)["message"]) == log.MAX_TEXT


@pytest.mark.parametrize("figures", [{"order": {"customer_id": 1}}, {"ids": [1, 2]}, {"timestamp": "x"},
                                     {"logger": "x"}])
def test_a_line_takes_no_payload_and_no_reserved_name(figures: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        log.line("store", "m", **figures)


def test_on_lambda_the_line_is_one_json_object_on_stdout_alone(capsys: pytest.CaptureFixture[str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    try:
        log.configure({"AWS_LAMBDA_FUNCTION_NAME": "txpipe-dev-sync"})
        log.emit("sync", "moved 3 orders", moved=3)
        log.emit("ops", "status", level=log.DEBUG, action="status")
    finally:
        log.configure(os.environ)
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["message"] for line in out] == ["moved 3 orders", "status"]
    assert json.loads(out[0])["moved"] == 3 and json.loads(out[1])["level"] == "DEBUG"
    assert not [r for r in caplog.records if r.name == log.LOGGER_NAME]  # not also through Lambda's own handler
    log.emit("sync", "elsewhere")
    assert capsys.readouterr().out == ""  # off Lambda: a record for the process's log (the local runtime's)
    assert [r.getMessage() for r in caplog.records if r.name == log.LOGGER_NAME][-1].endswith('"elsewhere"}')


def event(body: Any) -> dict[str, Any]:
    return {"httpMethod": "POST", "body": body if isinstance(body, str) else json.dumps(body)}


ORDER = {"customer_id": 987_654, "type": "cheese", "qty": 3, "retail_price": 987.65}


def test_ingest_says_accepted_or_refused_per_request_and_never_the_orders(monkeypatch: pytest.MonkeyPatch,
                                                                          lines: list[dict[str, Any]]) -> None:
    queue = Queue()
    monkeypatch.setattr(ingest.env, "queue", lambda: queue)
    ingest.handler(event([ORDER, ORDER | {"qty": 1}]), None)
    ingest.handler(event([ORDER, ORDER, ORDER | {"type": "Cheese", "order_id": "secret-ish-id-1"}]), None)
    ingest.handler(event("[{"), None)
    queue.fail = True
    ingest.handler(event(ORDER), None)
    figures = [{k: line[k] for k in ("level", "orders", "accepted", "refused", "status")} for line in lines]
    assert figures == [
        {"level": "INFO", "orders": 2, "accepted": 2, "refused": 0, "status": 202},
        {"level": "WARNING", "orders": 3, "accepted": 0, "refused": 3, "status": 400},
        {"level": "WARNING", "orders": None, "accepted": 0, "refused": None, "status": 400},
        {"level": "ERROR", "orders": 1, "accepted": 0, "refused": 0, "status": 503}]
    assert [line["message"] for line in lines[:2]] == [
        "accepted 2 orders", f"refused a request of 3 orders: index 2 type: {lines[1]['message'].split(': ', 2)[2]}"]
    assert lines[1]["errors"] == 1 and lines[2]["message"].startswith("refused an unreadable request: malformed JSON")
    text = json.dumps(lines)
    assert "987654" not in text and "987.65" not in text and "secret-ish-id-1" not in text
    assert {line["service"] for line in lines} == {"ingest"}


def test_store_says_what_became_of_each_batch(monkeypatch: pytest.MonkeyPatch, lines: list[dict[str, Any]]) -> None:
    results = iter([StoreResult(stored=480, duplicates=5, rejected=15),
                    StoreResult(stored=0, dead_lettered=1, failures=["m2", "m3"])])
    monkeypatch.setattr(store, "process_records", lambda *args: next(results))
    monkeypatch.setattr(store.env, "queue", lambda: None)
    store.handler({"Records": [{}] * 10}, None)
    store.handler({"Records": [{}] * 3}, None)
    assert [(line["level"], line["message"]) for line in lines] == [
        ("INFO", "10 messages: 480 orders stored, 5 already present, 15 rejected"),
        ("WARNING", "3 messages: 0 orders stored, 2 messages to retry, 1 dead-lettered")]
    assert {k: lines[0][k] for k in ("messages", "stored", "already_present", "rejected", "retried",
                                     "dead_lettered")} == {"messages": 10, "stored": 480, "already_present": 5,
                                                           "rejected": 15, "retried": 0, "dead_lettered": 0}
    assert (lines[1]["retried"], lines[1]["dead_lettered"]) == (2, 1)


def test_sync_says_what_moved_apart_from_its_metric_line(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str],
                                                         lines: list[dict[str, Any]]) -> None:
    result = SyncResult(synced=600, pending=7, seconds=0.2, batches=2, oldest_pending_seconds=31.5, inserted=590,
                        already_present=10, being_moved=3)
    monkeypatch.setattr(sync, "run_sync", lambda *args, **kwargs: result)
    for name in ("oltp", "warehouse_backend"):
        monkeypatch.setattr(sync.env, name, lambda: None)
    monkeypatch.setattr(sync.env, "environ", lambda: {"TXPIPE_METRICS_NAMESPACE": "txpipe", "TXPIPE_STAGE": "t"})
    sync.handler({"source": "txpipe.sync-now"}, None)
    sync.handler({}, None)  # EventBridge Scheduler's empty input
    [metric, _] = capsys.readouterr().out.splitlines()  # the EMF line is still printed, one per run
    assert json.loads(metric)["PendingOrders"] == 7
    assert lines[0] == {"level": "INFO", "timestamp": lines[0]["timestamp"], "service": "sync",
                        "message": "moved 600 orders", "moved": 600, "already_present": 10, "pending": 7,
                        "being_moved": 3, "seconds": 0.2, "rows_per_second": 3000, "batches": 2,
                        "oldest_pending_seconds": 31.5, "trigger": "txpipe.sync-now"}
    assert lines[1]["trigger"] == "schedule"


def test_refresh_names_its_views(monkeypatch: pytest.MonkeyPatch, lines: list[dict[str, Any]]) -> None:
    refreshing = SimpleNamespace(refresh=lambda conn: ["sales_by_state", "state_sales"])
    monkeypatch.setattr(refresh.env, "warehouse_backend", lambda: refreshing)
    monkeypatch.setattr(refresh.env, "warehouse", lambda: None)
    assert refresh.handler({}, None) == {"refreshed": ["sales_by_state", "state_sales"]}
    assert lines[0]["message"] == "refreshed 2 views" and lines[0]["views"] == ["sales_by_state", "state_sales"]
    assert isinstance(lines[0]["seconds"], float)


def test_ops_logs_the_clis_own_reads_at_debug_level(monkeypatch: pytest.MonkeyPatch,
                                                    lines: list[dict[str, Any]]) -> None:
    monkeypatch.setitem(ops.ACTIONS, "status", lambda event: contract.Status.from_dict(
        {"errors": {}, "orders": 5, "outbox_backlog": 0, "rows": [[1, "x"]]}))
    monkeypatch.setitem(ops.ACTIONS, "dlq_purge", lambda event: contract.Purged.from_dict({"purged": 4, "done": True}))
    monkeypatch.setitem(ops.ACTIONS, "rejected_purge", lambda event: (_ for _ in ()).throw(ValueError("send it")))
    for action in ("status", "dlq_purge", "rejected_purge", "nope"):
        ops.handler({"action": action}, None)
    assert [(line["level"], line["message"]) for line in lines] == [
        ("DEBUG", "status"), ("INFO", "dlq_purge"), ("WARNING", "rejected_purge refused: send it"),
        ("WARNING", lines[3]["message"])]
    assert lines[3]["message"].startswith("nope refused: unknown action 'nope'")
    assert "orders" not in lines[0] and "rows" not in lines[0]  # a read's result is not logged
    assert (lines[1]["action"], lines[1]["purged"]) == ("dlq_purge", 4) and "done" not in lines[1]

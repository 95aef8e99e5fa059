"""What sla-report, status, dlq purge and seed say to a person (issue 16 items 8 and 11): durations in words, no
None, "none pending", plurals, history apart; run through the CLI over a target that answers as a deployment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app
from txpipe_cli.commands import dlq, orders, pipeline, warehouse

runner = CliRunner()


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


class Deployment:
    """A deployed target: `answers` by ops action (or a function of the payload); `sent`, what it was asked."""

    def __init__(self, answers: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        self.answers = answers
        self._status = status or {}
        self.sent: list[dict[str, Any]] = []

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        self.sent.append(payload)
        answer = self.answers[payload["action"]]
        return answer(payload) if callable(answer) else answer

    def deployed_settings(self) -> dict[str, Any]:
        return {"sla_seconds": 900.0}

    def status(self) -> dict[str, Any]:
        return self._status


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch):
    def install(answers: dict[str, Any], status: dict[str, Any] | None = None) -> Deployment:
        target = Deployment(answers, status)
        for module in (dlq, orders, pipeline, warehouse):
            monkeypatch.setattr(module, "get_target", lambda *args, **kwargs: target)
        return target
    return install


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


def sla_answer(**changes: Any) -> dict[str, Any]:
    return {"sla_seconds": 900.0, "oltp_orders": 12, "warehouse_orders": 12, "synced": 12, "pending": 0,
            "oldest_pending_seconds": 0.0, "lag_seconds": {"p50": 0.42, "p95": 250.0, "p99": 7979.0, "max": 2592041.11},
            "breaches": 0, "last_sync_at": ago(250), "history": {"orders": 0, "pending": 0, "counted": False},
            **changes}


# --------------------------------------------------------------------------- sla-report

def test_sla_report_says_durations_and_none_pending(deploy) -> None:
    """Lags as durations (not "2592041.11 s"), the SLA in minutes, "none pending", the last sync's age."""
    deploy({"sla_report": sla_answer()})
    text = run("sla-report").stdout
    assert "SLA report (SLA 15 min, orders of the last 24h)" in text
    assert [row(text, label) for label in ("oldest pending", "lag p50", "lag p95", "lag p99", "lag max")] == [
        "none pending", "0.4 s", "4 min 10 s", "2 h 13 min", "30 d"]
    assert "UTC (4 min 1" in row(text, "last sync")  # 250 s ago (a second may pass)
    assert "2592041" not in text and "0.0 s" not in text


def test_sla_report_leaves_history_out_and_says_so(deploy) -> None:
    """History in the window: not counted, said in one line, exit 0; the ops action is asked to leave it out."""
    target = deploy({"sla_report": sla_answer(history={"orders": 5000, "pending": 0, "counted": False})})
    result = run("sla-report")
    assert "5000 historical orders loaded by seed --history are not counted (--include-history counts them)" in (
        " ".join(result.stdout.split()))
    assert target.sent[-1]["include_history"] is False
    assert json.loads(run("sla-report", "--json").stdout)["history"]["orders"] == 5000


def test_include_history_asks_for_it_and_its_breaches_exit_3(deploy) -> None:
    target = deploy({"sla_report": sla_answer(breaches=1, history={"orders": 1, "pending": 1, "counted": True})})
    result = run("sla-report", "--include-history", code=3)
    assert target.sent[-1]["include_history"] is True
    assert ("1 historical order loaded by seed --history is counted, 1 of them pending the sync (old by design, "
            "so late)") in " ".join(result.stdout.split())
    assert "SLA breached by 1 order\n" in result.stderr


def test_pending_orders_show_the_oldest_age(deploy) -> None:
    deploy({"sla_report": sla_answer(pending=2, oldest_pending_seconds=250.0, breaches=3)})
    result = run("sla-report", code=3)
    assert row(result.stdout, "oldest pending") == "4 min 10 s"
    assert "SLA breached by 3 orders" in result.stderr


# --------------------------------------------------------------------------- status

def local_status(**pipeline_changes: Any) -> dict[str, Any]:
    return {
        "target": "local",
        "parts": {"postgres": {"alive": True, "port": 5432, "data": "/data"},
                  "runtime": {"alive": True, "state": "alive", "pid": None, "api_url": "http://127.0.0.1:1"}},
        "settings": {"sla_seconds": 900.0, "sync_every_seconds": 300.0, "refresh_at": "02:00", "timezone": None,
                     "visibility_timeout_seconds": 30.0, "max_receive_count": 1000, "chosen": []},
        "schedules": {"sync": {"every_seconds": 300.0, "next_run_at": ago(-296), "last_run": None},
                      "refresh": {"daily_at": "02:00", "timezone": "America/Chicago", "next_run_at": ago(-7979),
                                  "last_run": {"started_at": ago(3601), "finished_at": ago(3600)}}},
        "pipeline": {"errors": {}, "orders": 0, "customers": 0, "estimated": [], "outbox_backlog": 0,
                     "oldest_pending_at": None, "rejected_orders": 0, "last_sync": None,
                     "queue": {"visible": 0, "in_flight": 0, "dead_letters": 0}, **pipeline_changes},
    }


def row(text: str, label: str) -> str:
    """The value in a table's row, by its label."""
    [line] = [line for line in text.splitlines() if f" {label} " in line]
    return line.split("│")[2].strip()


def test_status_says_no_run_yet_and_the_machines_time_zone(deploy) -> None:
    deploy({}, local_status())
    output = run("status").stdout
    assert (row(output, "oldest pending since"), row(output, "last sync")) == ("none pending", "never")
    text = " ".join(output.split())
    assert "schedule sync: no run yet, next " in text and " UTC (in 4 min 5" in text
    assert "schedule refresh: last run ok " in text and " UTC (1 h ago), next " in text
    assert "timezone=the machine's time zone (America/Chicago)" in text
    assert "sla_seconds=900 (15 min), sync_every_seconds=300 (5 min)" in text
    assert "visibility_timeout_seconds=30," in text
    assert "None" not in text and "not run yet" not in text and "pid=" not in text  # the pid, unknown: left out


def test_status_gives_ages_of_the_oldest_pending_and_the_last_sync(deploy) -> None:
    deploy({}, local_status(oldest_pending_at=ago(250), outbox_backlog=3,
                            last_sync={"finished_at": ago(7979), "synced": 1, "pending": 0}))
    output = run("status").stdout
    oldest = row(output, "oldest pending since")
    assert "UTC (4 min 1" in oldest and oldest.endswith(" s ago)")  # 250 s ago (a second may pass)
    assert row(output, "last sync").endswith("UTC (2 h 13 min ago)")


# --------------------------------------------------------------------------- dlq purge

def test_purging_an_empty_dead_letter_queue_asks_nothing_and_exits_0(deploy) -> None:
    target = deploy({"dlq_list": {"count": 0, "listed": 0, "reasons": {}, "messages": []},
                     "dlq_purge": {"purged": 0}})
    assert "the dead-letter queue is empty: nothing to purge" in run("dlq", "purge").stdout  # no terminal, no prompt
    assert [p["action"] for p in target.sent] == ["dlq_list"]
    assert "the dead-letter queue is empty: nothing to purge" in run("dlq", "purge", "--yes").stdout
    assert json.loads(run("dlq", "purge", "--json").stdout) == {"purged": 0}


def test_purging_dead_letters_asks_with_their_count(deploy) -> None:
    deploy({"dlq_list": {"count": 1, "listed": 1, "reasons": {}, "messages": []}, "dlq_purge": {"purged": 1}})
    result = runner.invoke(app, ["dlq", "purge"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete the 1 message in the dead-letter queue for good?" in result.stdout
    assert "purged 1 dead letter\n" in result.stdout
    assert runner.invoke(app, ["dlq", "purge"], input="n\n").exit_code == 1  # declined: Aborted, as before


def test_dlq_list_ages_in_words(deploy) -> None:
    message = {"message_id": "m-1", "reason": "bad", "sent_at": ago(7979), "age_seconds": 7979.0,
               "dead_lettered_at": None, "receive_count": 1, "bytes": 10}
    deploy({"dlq_list": {"count": 1, "listed": 1, "reasons": {"bad": 1}, "messages": [message]}})
    text = run("dlq", "list").stdout
    assert "1 dead letter" in text and "dead letter(s)" not in text and "2 h 13 min" in text


# --------------------------------------------------------------------------- seed

def commit(loaded: int, new: int, updated: int) -> dict[str, Any]:
    return {"customers_stage": lambda payload: {"staged": len(payload["rows"])},
            "customers_commit": {"loaded": loaded, "new": new, "updated": updated, "moved": 0},
            "customers_abort": {}}


@pytest.mark.parametrize(("counts", "line"), [
    ((5000, 0, 0), "nothing changed: 5000 customers already as given"),
    ((1, 0, 0), "nothing changed: 1 customer already as given"),
    ((1, 1, 0), "loaded 1 customer: 1 new"),
    ((5000, 10, 2), "loaded 5000 customers: 10 new, 2 updated, 4988 already as given"),
])
def test_seed_says_what_changed(deploy, counts: tuple[int, int, int], line: str) -> None:
    deploy(commit(*counts))
    assert line in run("seed", "--generate", "3").stdout


def test_seed_history_words(deploy) -> None:
    deploy({"history_load": lambda payload: {"inserted": 0, "already_present": payload["count"]}})
    assert "nothing changed: the 1 order over 1 day was already there (checked in " in (
        run("seed", "--history", "1", "--days", "1").stdout)
    deploy({"history_load": lambda payload: {"inserted": payload["count"], "already_present": 0}})
    text = run("seed", "--history", "10", "--days", "30").stdout
    assert "loaded 10 orders over 30 days in " in text and ": 10 new" in text and "run: txpipe sync-now" in text

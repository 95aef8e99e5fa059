"""Every command's `--json` over the ops function prints what the function answered, byte for byte, whichever
release answered: this release's shapes, an earlier release's (keys it did not send yet: history, resolved,
moved, task_handle, a float per capita) and a later one's (a key this release does not know, kept). Run through
the CLI over a target answering each ops action as a deployment would (txpipe_cli/ops_client.py reads them)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app
from txpipe_cli.commands import dlq, orders, report, warehouse

runner = CliRunner()

FRESH = {"views_refreshed_at": "2026-12-02T09:30:00+00:00", "awaiting_refresh": 3, "last_sync_at": None,
         "awaiting_sync": 5}
TEXAS = {"state": "TX", "state_name": "Texas", "population": 29145505, "total_pizzas": 1200, "gross_sales": 20388.0,
         "gross_sales_per_capita": "0.00069953", "unique_customers": 300, "rank": 1,
         "top_pizzas": [{"pizza_type": "cheese", "total_pizzas": 700, "gross_sales": 11893.0},
                        {"pizza_type": "veggie", "total_pizzas": 500, "gross_sales": 8495.0}]}
WYOMING = {"state": "WY", "state_name": "Wyoming", "population": 576851, "total_pizzas": 0, "gross_sales": 0.0,
           "gross_sales_per_capita": "0", "unique_customers": 0, "rank": 51, "top_pizzas": []}
SLA = {"sla_seconds": 900.0, "oltp_orders": 12, "warehouse_orders": 10, "synced": 10, "pending": 2,
       "oldest_pending_seconds": 31.5, "lag_seconds": {"p50": 0.42, "p95": 250.0, "p99": None, "max": 2592041.11},
       "breaches": 0, "last_sync_at": "2026-12-02T09:31:00+00:00",
       "history": {"orders": 4, "pending": 1, "counted": False}}
LETTER = {"message_id": "m-1", "reason": "not JSON", "sent_at": "2026-12-01T10:00:00+00:00", "age_seconds": 86400.0,
          "dead_lettered_at": None, "receive_count": 1, "bytes": 7}
DLQ_LIST = {"count": 1, "listed": 1, "reasons": {"not JSON": 1}, "messages": [LETTER]}
ROW = {"id": 2, "order_id": "rej-still", "reason": "unknown customer_id", "rejected_at": "2026-12-01T10:00:00+00:00",
       "order": {"order_id": "rej-still", "customer_id": 888888, "type": "veggie", "qty": 1, "retail_price": 9.25},
       "resolved": False, "stored_at": None}
REJECTED = {"count": 1, "resolved": 1, "oldest_at": ROW["rejected_at"], "newest_at": ROW["rejected_at"],
            "reasons": {"unknown customer_id": 1}, "rows": [ROW]}
ANSWERS: dict[str, Any] = {
    "report": lambda p: {"freshness": FRESH, "states": [TEXAS, WYOMING] if p.get("all") else [TEXAS]},
    "sla_report": SLA, "dlq_list": DLQ_LIST, "dlq_show": {**LETTER, "body": "{\"qty\": "},
    "dlq_redrive": {"moved": 3, "status": "RUNNING", "task_handle": "arn:task"}, "dlq_purge": {"purged": 1},
    "rejected": REJECTED, "rejected_purge": {"purged": 1}, "queue_depth": {"visible": 0, "in_flight": 0,
                                                                          "dead_letters": 0},
    "customers_stage": lambda p: {"staged": len(p["rows"])},
    "customers_commit": {"loaded": 2, "new": 1, "updated": 1, "moved": 1}, "customers_abort": {"aborted": True},
}
# What an earlier release's functions answered: keys this release added are missing, per capita a float.
EARLIER = {"sla_report": {k: v for k, v in SLA.items() if k != "history"},
           "rejected": {k: v for k, v in REJECTED.items() if k != "resolved"},
           "dlq_redrive": {"moved": 3, "status": "COMPLETED"},
           "customers_commit": {"loaded": 2, "new": 1, "updated": 1},
           "report": lambda p: {"freshness": {**FRESH, "awaiting_sync": None, "awaiting_sync_error": "refused"},
                                "states": [{**TEXAS, "gross_sales_per_capita": 0.00069953}]}}


class Deployment:
    """A deployed target answering ops actions from `answers` (a dict, or a function of the payload)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        assert function == "ops", function
        answer = self.answers[payload["action"]]
        return copy.deepcopy(answer(payload) if callable(answer) else answer)

    def deployed_settings(self) -> dict[str, Any]:
        return {"sla_seconds": 900.0}


def later(answer: Any) -> Any:
    """A later release's answer: one key more, at the end of each object the CLI reads."""
    if callable(answer):
        return lambda p: later(answer(p))
    return {**answer, "added_later": {"x": 1}} if isinstance(answer, dict) else answer


@pytest.fixture(params=["this", "earlier", "later"])
def answers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    chosen = {"this": ANSWERS, "earlier": {**ANSWERS, **EARLIER},
              "later": {name: later(answer) for name, answer in ANSWERS.items()}}[request.param]
    target = Deployment(chosen)
    for module in (dlq, orders, report, warehouse):
        monkeypatch.setattr(module, "get_target", lambda *args, **kwargs: target)
    return chosen


def printed(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return result.stdout


def as_printed(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def answer(answers: dict[str, Any], action: str, **payload: Any) -> Any:
    found = answers[action]
    return found({"action": action, **payload}) if callable(found) else found


@pytest.mark.parametrize(("args", "action", "payload"), [
    (["sla-report"], "sla_report", {}), (["dlq", "list"], "dlq_list", {}), (["dlq", "show", "m-1"], "dlq_show", {}),
    (["dlq", "redrive"], "dlq_redrive", {}), (["dlq", "purge", "--yes"], "dlq_purge", {}),
    (["rejected", "list"], "rejected", {}), (["rejected", "purge", "--resolved", "--yes"], "rejected_purge", {}),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_commands_json_is_the_functions_answer(answers: dict[str, Any], args: list[str], action: str,
                                                  payload: dict[str, Any]) -> None:
    assert printed(*args) == as_printed(answer(answers, action, **payload))


def test_report_json_is_the_ranking_then_the_answer(answers: dict[str, Any]) -> None:
    ranking = {"ranking": report.RANKING}
    assert printed("report", "--all") == as_printed({**ranking, **answer(answers, "report", all=True)})
    assert printed("report", "--state", "TX") == as_printed({**ranking, **answer(answers, "report", states=["TX"])})


def test_seed_json_names_the_loads_counts(answers: dict[str, Any], tmp_path: Any) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,state\n1,TX\n2,CA\n")
    committed = answer(answers, "customers_commit")
    assert json.loads(printed("seed", "--customers", str(customers))) == {
        "customers": 2, "new": 1, "updated": 1, "moved": committed.get("moved", 0)}

"""The contract between the ops function and its callers (lambdas/core/contract.py, txpipe_cli/ops_client.py):
each action's answer read and written back byte for byte, key order included; what an earlier or a later
release sends read too; an answer missing what the CLI needs refused in one line; one client method per action,
sending what the function reads; and the contract on the standard library alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lambdas import ops
from lambdas.core import contract
from txpipe_cli.errors import TxpipeError
from txpipe_cli.ops_client import OpsClient

ROOT = Path(__file__).resolve().parents[2]
LETTER = {"message_id": "m-1", "reason": "not JSON", "sent_at": "2026-12-01T10:00:00+00:00", "age_seconds": 86400.0,
          "dead_lettered_at": None, "receive_count": 1, "bytes": 7}
STATE = {"state": "TX", "state_name": "Texas", "population": 29145505, "total_pizzas": 12, "gross_sales": 203.88,
         "gross_sales_per_capita": "0.00000699530000", "unique_customers": 3, "rank": 1,
         "top_pizzas": [{"pizza_type": "cheese", "total_pizzas": 12, "gross_sales": 203.88}]}
FRESH = {"views_refreshed_at": None, "awaiting_refresh": 0, "last_sync_at": "2026-12-02T09:31:00+00:00",
         "awaiting_sync": 7}
ROW = {"id": 2, "order_id": None, "reason": "unknown customer_id", "rejected_at": "2026-12-01T10:00:00+00:00",
       "order": {"payload": "[1]"}, "resolved": False, "stored_at": None}
# Each action's answers as this release's function sends them (every variant whose keys differ).
ANSWERS: dict[str, list[dict[str, Any]]] = {
    "migrate": [{"applied": {"oltp": [1, 2], "warehouse": []}, "state_population_rows": 51}],
    "customers_stage": [{"staged": 5000}], "customers_abort": [{"aborted": True}],
    "customers_commit": [{"loaded": 3, "new": 1, "updated": 1, "moved": 0}],
    "history_load": [{"inserted": 250, "already_present": 250}],
    "report": [{"freshness": FRESH, "states": [STATE]}, {"states": [STATE, {**STATE, "top_pizzas": []}]},
               {"freshness": {**FRESH, "awaiting_sync": None, "awaiting_sync_error": "connection refused"},
                "states": []}],
    "freshness": [FRESH],
    "sla_report": [{"sla_seconds": 900.0, "oltp_orders": 2, "warehouse_orders": 1, "synced": 1, "pending": 1,
                    "oldest_pending_seconds": 3.5, "lag_seconds": {"p50": 1.0, "p95": 1.0, "p99": 1.0, "max": None},
                    "breaches": 0, "last_sync_at": None, "history": {"orders": 0, "pending": 0, "counted": False}}],
    "status": [{"errors": {}, "orders": 10, "customers": 4, "estimated": ["orders"], "outbox_backlog": 1,
                "oldest_pending_at": None, "rejected_orders": 0, "last_sync": None,
                "queue": {"visible": 0, "in_flight": 1, "dead_letters": 2}},
               {"errors": {"oltp": "refused", "queue": "gone"},
                "last_sync": {"finished_at": "2026-12-02T09:31:00+00:00", "synced": 3, "pending": 0}},
               {"errors": {"oltp": "a", "warehouse": "b", "queue": "c"}}],
    "queue_depth": [{"visible": 3, "in_flight": 0, "dead_letters": 0}],
    "dlq_list": [{"count": 1, "listed": 1, "reasons": {"not JSON": 1}, "messages": [LETTER]}],
    "dlq_show": [{**LETTER, "body": "{"}],
    "dlq_redrive": [{"moved": 2, "status": "COMPLETED"}, {"moved": 2, "status": "RUNNING", "task_handle": "h"}],
    "dlq_purge": [{"purged": 0}], "rejected_purge": [{"purged": 1}],
    "rejected": [{"count": 1, "resolved": 0, "oldest_at": None, "newest_at": None, "reasons": {}, "rows": [ROW]}],
}


def same_bytes(result: contract.Result, answer: dict[str, Any]) -> bool:
    return json.dumps(result.to_dict()) == json.dumps(answer)


@pytest.mark.parametrize("action", sorted(ANSWERS))
def test_each_answer_reads_and_writes_back_byte_for_byte(action: str) -> None:
    kind = contract.ACTIONS[action]
    for answer in ANSWERS[action]:
        result = kind.from_dict(answer)
        assert same_bytes(result, answer), action
        assert result.extra == {}, f"{action}: {sorted(result.extra)} not in {kind.__name__}"  # the type says all


def test_every_action_has_a_type_a_function_and_a_client_method() -> None:
    assert set(contract.ACTIONS) == set(ops.ACTIONS) == set(ANSWERS)
    assert all(callable(getattr(OpsClient, action, None)) for action in contract.ACTIONS)


def test_ops_answers_its_actions_type_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler answers the action's result as to_dict gives it (here queue_depth over a stand-in queue)."""
    stats = type("Stats", (), {"visible": 3, "in_flight": 0, "dead_letters": 0})()
    monkeypatch.setattr(ops.env, "queue", lambda: type("Queue", (), {"stats": lambda self: stats})())
    assert ops.handler({"action": "queue_depth"}, None) == ANSWERS["queue_depth"][0]


def test_an_earlier_releases_answer_reads_without_what_it_did_not_send() -> None:
    sla = {k: v for k, v in ANSWERS["sla_report"][0].items() if k != "history"}
    assert contract.SlaReport.from_dict(sla).history is None and same_bytes(contract.SlaReport.from_dict(sla), sla)
    rejected = {k: v for k, v in ANSWERS["rejected"][0].items() if k != "resolved"}
    assert contract.Rejected.from_dict(rejected).resolved is None
    assert contract.CustomersCommitted.from_dict({"loaded": 1, "new": 1, "updated": 0}).moved is None
    float_per_capita = {**STATE, "gross_sales_per_capita": 7e-06}
    assert contract.StateReport.from_dict(float_per_capita).gross_sales_per_capita == 7e-06


def test_a_later_releases_keys_are_kept_and_given_back_last() -> None:
    answer = {**FRESH, "new_figure": [1, 2]}
    result = contract.Freshness.from_dict(answer)
    assert result.extra == {"new_figure": [1, 2]} and same_bytes(result, answer)
    nested = {"freshness": answer, "states": [{**STATE, "orders": 4}]}
    assert same_bytes(contract.Report.from_dict(nested), nested)


def test_a_status_reads_the_stores_it_could_read() -> None:
    every, some, none = (contract.Status.from_dict(answer) for answer in ANSWERS["status"])
    assert every.oltp and every.oltp.about("orders") == "~10 (estimate)" and every.oltp.about("customers") == 4
    assert every.queue and every.queue.waiting == 1 and every.last_sync is None and every.warehouse is not None
    assert some.oltp is None and some.queue is None and some.last_sync and some.last_sync.synced == 3
    assert (none.oltp, none.warehouse, none.queue) == (None, None, None)
    assert contract.Status.keys()[:2] == ("errors", "orders")


@pytest.mark.parametrize(("kind", "answer", "said"), [
    (contract.Report, {"freshness": FRESH}, "Report has no 'states'"),
    (contract.Report, {"states": [{"state": "TX"}]}, "StateReport has no 'state_name'"),
    (contract.Report, {"states": {"TX": STATE}}, "Report.states is a list, not dict"),
    (contract.QueueDepth, ["not", "an", "object"], "QueueDepth is a JSON object, not list"),
    (contract.QueueDepth, None, "QueueDepth is a JSON object, not NoneType"),
])
def test_an_answer_without_what_is_needed_is_refused_naming_it(kind: type[contract.Result], answer: Any,
                                                                said: str) -> None:
    with pytest.raises(contract.ContractError, match=said):
        kind.from_dict(answer)


class Recorder:
    """A target whose ops function answers `answer`, keeping what it was sent (and the timeout, if one)."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.sent = answer, []

    def invoke(self, function: str, payload: dict[str, Any], **timeout: float) -> Any:
        self.sent.append((function, payload, timeout))
        return self.answer


def test_an_answer_the_client_cannot_read_is_one_line_saying_to_deploy() -> None:
    with pytest.raises(TxpipeError) as raised:
        OpsClient(Recorder({"visible": 1})).queue_depth()
    assert raised.value.line() == (
        "the ops function answered queue_depth in a shape this txpipe does not read: QueueDepth has no "
        "'in_flight' (deploy this release (txpipe deploy, with your --target and --stage), then run the command "
        "again)")
    with pytest.raises(TxpipeError, match="report without its freshness"):
        OpsClient(Recorder({"states": []})).report(all=True)


@pytest.mark.parametrize(("call", "payload"), [
    (lambda ops: ops.report(all=True), {"action": "report", "all": True}),
    (lambda ops: ops.report(states=["TX", "CA"]), {"action": "report", "states": ["TX", "CA"]}),
    (lambda ops: ops.report(states=("TX",), freshness=False), {"action": "report", "states": ["TX"],
                                                               "freshness": False}),
    (lambda ops: ops.sla_report(sla_seconds=900.0, since_seconds=None, include_history=True),
     {"action": "sla_report", "sla_seconds": 900.0, "since_seconds": None, "include_history": True}),
    (lambda ops: ops.rejected(limit=1), {"action": "rejected", "after_id": 0, "limit": 1, "reason": None,
                                         "all": False}),
    (lambda ops: ops.rejected_purge(), {"action": "rejected_purge", "resolved": True}),
    (lambda ops: ops.dlq_show("m-1"), {"action": "dlq_show", "message_id": "m-1"}),
    (lambda ops: ops.customers_stage("seed-1", [[1, "TX"]], first=True),
     {"action": "customers_stage", "load_id": "seed-1", "rows": [[1, "TX"]], "first": True}),
    (lambda ops: ops.history_load(seed=42, start=0, count=5, total=10, days=3, end="2026-12-02T00:00:00+00:00"),
     {"action": "history_load", "seed": 42, "total": 10, "days": 3, "end": "2026-12-02T00:00:00+00:00", "start": 0,
      "count": 5}),
])
def test_each_method_sends_what_the_function_reads(call: Any, payload: dict[str, Any]) -> None:
    """The events are the ones the commands sent before the client (ops.py reads them unchanged)."""
    target = Recorder(next(a[0] for name, a in ANSWERS.items() if name == payload["action"]))
    call(OpsClient(target))
    assert target.sent == [("ops", payload, {})]


def test_a_timeout_given_is_passed_to_the_target_and_none_leaves_its_own() -> None:
    target = Recorder(ANSWERS["queue_depth"][0])
    OpsClient(target).queue_depth()
    OpsClient(target, timeout=2.5).queue_depth()
    assert [timeout for _, _, timeout in target.sent] == [{}, {"timeout": 2.5}]


def test_the_contract_needs_nothing_but_the_standard_library() -> None:
    """The Lambda package and the CLI's start-up import it: no pydantic, nothing installed (-S: no site-packages
    on the path at all, so importing anything else would fail)."""
    probe = ("import sys; import lambdas.core.contract; "
             "print('\\n'.join(sorted({m.partition('.')[0] for m in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    assert [name for name in loaded if name not in sys.stdlib_module_names] == ["__main__", "lambdas"]

"""`txpipe sync-now` (txpipe_cli/commands/warehouse.py): what it prints and returns, given the sync's result."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app
from txpipe_cli.commands import warehouse

runner = CliRunner()
RESULT = {"synced": 70, "pending": 0, "seconds": 0.5, "batches": 1, "oldest_pending_seconds": 120.0,
          "inserted": 70, "already_present": 0, "warehouse_woken": True, "staged_batches": 0}


class StubTarget:
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        if function == "ops":
            return {"visible": 0, "in_flight": 0, "dead_letters": 0}
        return self.result


def sync_now(monkeypatch: pytest.MonkeyPatch, result: dict[str, Any], *args: str) -> str:
    monkeypatch.setattr(warehouse, "get_target", lambda name, stage: StubTarget(result))
    outcome = runner.invoke(app, ["sync-now", "--queue-wait", "0", *args])
    assert outcome.exit_code == 0, outcome.output
    return outcome.stdout


def test_orders_another_run_is_moving_are_named_apart_from_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a scheduled run holds 30 orders, sync-now says so and does not call them pending."""
    out = sync_now(monkeypatch, {**RESULT, "being_moved": 30})
    assert "0 pending; a scheduled sync (or another sync-now) is moving 30 orders right now" in " ".join(out.split())
    moved = json.loads(sync_now(monkeypatch, {**RESULT, "being_moved": 30}, "--json"))
    assert (moved["pending"], moved["being_moved"]) == (0, 30)


def test_nothing_said_of_other_runs_when_none_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No other run (or a sync function of an earlier release, which does not say): being_moved is 0."""
    assert "moving" not in sync_now(monkeypatch, {**RESULT, "being_moved": 0})
    assert json.loads(sync_now(monkeypatch, RESULT, "--json"))["being_moved"] == 0

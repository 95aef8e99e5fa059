"""`txpipe rejected list|purge` on the AWS target (txpipe_cli/commands/dlq.py): each is one ops action through
the Lambda Invoke API (the real AwsClient over a session answered at the network edge, tests/support/scripted_aws.py),
the same actions the local target runs (tests/e2e/test_rejected_resolved_e2e.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.scripted_aws import ScriptedAws
from txpipe_cli.app import app
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.target import AwsTarget
from txpipe_cli.commands import dlq

runner = CliRunner()
STILL = {"id": 2, "order_id": "rej-still", "reason": "unknown customer_id", "rejected_at": "2026-12-01T10:00:00+00:00",
         "order": {"order_id": "rej-still", "customer_id": 888888, "type": "veggie", "qty": 1, "retail_price": 9.25},
         "resolved": False, "stored_at": None}
FIXED = {**STILL, "id": 1, "order_id": "rej-fixed", "resolved": True, "stored_at": "2026-12-01T11:00:00+00:00",
         "order": {**STILL["order"], "order_id": "rej-fixed", "customer_id": 777777}}
LISTED = {"count": 1, "resolved": 1, "oldest_at": STILL["rejected_at"], "newest_at": STILL["rejected_at"],
          "reasons": {"unknown customer_id": 1}}


@pytest.fixture
def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The AWS target of stage dev, recorded under a fresh home; its ops function answers each action as a
    deployment with one resolved and one pending rejection would. Returns the payloads it was sent."""
    (tmp_path / "aws-dev.json").write_text(json.dumps({"stack": "txpipe-dev", "stage": "dev"}))
    sent: list[dict[str, Any]] = []

    def answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        assert (operation, params["FunctionName"]) == ("Invoke", "txpipe-dev-ops"), (operation, params)
        payload = json.loads(params["Payload"])
        sent.append(payload)
        if payload["action"] == "rejected_purge":
            result: dict[str, Any] = {"purged": 1}
        else:
            result = {**LISTED, "rows": [FIXED, STILL] if payload.get("all") else [STILL]}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}

    scripted = ScriptedAws(answer, "us-east-1")
    monkeypatch.setattr(dlq, "get_target", lambda name, stage="dev", **_: AwsTarget(
        tmp_path, stage, AwsClient(session=scripted.session, sleep=lambda _: None)))
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path))
    return sent


def test_list_shows_the_pending_and_counts_the_resolved(ops: list[dict[str, Any]]) -> None:
    text = runner.invoke(app, ["rejected", "list", "--target", "aws"])
    assert text.exit_code == 0, text.output
    assert "1 rejected order pending" in text.stdout and "rej-still" in text.stdout
    assert "1 resolved (stored since; --all lists them): txpipe rejected purge --resolved deletes them." in text.stdout
    every = runner.invoke(app, ["rejected", "list", "--target", "aws", "--all"])
    assert every.exit_code == 0, every.output
    assert "1 rejected order pending, 1 resolved" in every.stdout and "resolved" in every.stdout
    as_json = runner.invoke(app, ["rejected", "list", "--target", "aws", "--all", "--json"])
    assert json.loads(as_json.stdout)["rows"] == [FIXED, STILL]
    assert [p.get("all") for p in ops] == [False, True, True] and {p["action"] for p in ops} == {"rejected"}


def test_purge_resolved_goes_through_the_ops_function(ops: list[dict[str, Any]]) -> None:
    """--resolved is required (exit 2, nothing invoked); --yes purges at once; without it the count is asked
    first and confirmed."""
    refused = runner.invoke(app, ["rejected", "purge", "--target", "aws", "--yes"])
    assert refused.exit_code == 2 and "give --resolved" in refused.output and ops == []
    done = runner.invoke(app, ["rejected", "purge", "--resolved", "--yes", "--target", "aws", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"purged": 1}
    assert ops == [{"action": "rejected_purge", "resolved": True}]
    asked = runner.invoke(app, ["rejected", "purge", "--resolved", "--target", "aws"], input="y\n")
    assert asked.exit_code == 0, asked.output
    assert "Delete the 1 resolved rejected order for good?" in asked.output
    assert "purged 1 resolved rejected order" in asked.output
    assert [p["action"] for p in ops] == ["rejected_purge", "rejected", "rejected_purge"]

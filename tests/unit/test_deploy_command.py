"""`txpipe deploy` (txpipe_cli/commands/pipeline.py) over the target-neutral interface (txpipe_cli/targets.py):
the command hands the AWS-only options to get_target, deploys with the same call on any target, and renders
the result by its shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app
from txpipe_cli.aws.target import AwsTarget
from txpipe_cli.commands import pipeline
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.target import LocalTarget
from txpipe_cli.targets import get_target

runner = CliRunner()

CHANGE_SET = {"target": "aws", "changed": False, "stack": "txpipe-dev", "action": "planned",
              "changes": [{"action": "Add", "resource": "OrdersQueue", "type": "AWS::SQS::Queue", "replacement": "-"}],
              "uploads": ["lambdas/a.zip", "templates/txpipe-b.json"], "record": {}}
ACTIONS = {"target": "local", "changed": True, "actions": {"postgres": "started", "schema": "up to date"},
           "api_url": "http://127.0.0.1:8080"}


ESTIMATE = {"lines": [{"part": "Redshift Serverless: sync", "detail": "4 RPU x 60 s minimum x 3,369 syncs",
                        "monthly_usd": 84.23, "per_million_orders": 0.0},
                       {"part": "API Gateway (REST)", "detail": "2,000,000 requests, one order each",
                        "monthly_usd": 7.0, "per_million_orders": 3.5}],
            "total_usd": 91.23, "per_million_orders_usd": 3.5, "orders_per_month": 2_000_000,
            "prices_date": "2026-12-02", "assumptions": ["one order per API request"]}


class FakeTarget:
    """Records the deploy call; answers a scripted result (sending its estimate first, as an AWS deploy does)."""

    name = "fake"

    def __init__(self, result: dict[str, Any], recorded: dict[str, Any] | None = None) -> None:
        self.result, self.recorded = result, recorded or {}
        self.deployed: list[PipelineSettings] = []

    def deployed_settings(self) -> dict[str, Any]:
        return self.recorded  # {}: a first deploy

    def deploy(self, settings: PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        self.deployed.append(settings)
        if self.result.get("changed") and "estimate" in self.result:
            on_event({"estimate": self.result["estimate"]})
        return self.result


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """Replaces get_target in the command with one building a FakeTarget; returns how it was asked."""

    def install(result: dict[str, Any], recorded: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        asked: list[dict[str, Any]] = []

        def fake_get_target(name: str, home: Path | None = None, stage: str = "dev", *, plan: bool = False,
                            parameters: Mapping[str, str] | None = None,
                            orders_per_month: int = 1_000_000) -> FakeTarget:
            target = FakeTarget(result, recorded)
            asked.append({"name": name, "stage": stage, "plan": plan, "parameters": dict(parameters or {}),
                          "orders_per_month": orders_per_month, "target": target})
            return target

        monkeypatch.setattr(pipeline, "get_target", fake_get_target)
        return asked

    return install


def test_plan_and_params_go_to_the_target_factory_not_to_deploy(built: Any) -> None:
    """--plan and --param K=V configure the target when it is built; a change-set result is shown as one."""
    asked = built(CHANGE_SET)
    result = runner.invoke(app, ["deploy", "--target", "aws", "--stage", "prod", "--plan", "--param",
                                 "WarehouseMode=provisioned", "--param", "StoreBatchSize=20"])
    assert result.exit_code == 0, result.output
    [call] = asked
    assert {k: v for k, v in call.items() if k != "target"} == {
        "name": "aws", "stage": "prod", "plan": True, "orders_per_month": 1_000_000,
        "parameters": {"WarehouseMode": "provisioned", "StoreBatchSize": "20"}}
    assert "change set for stack txpipe-dev" in result.stdout and "OrdersQueue" in result.stdout
    assert "A deploy would upload: lambdas/a.zip, templates/txpipe-b.json." in result.stdout
    assert "Plan only: 1 change; nothing was created or changed." in result.stdout


def test_a_converging_result_is_shown_part_by_part_whatever_the_target_is_called(built: Any) -> None:
    """The rendering follows the result's shape (parts and actions), not the target's name."""
    built(ACTIONS)
    result = runner.invoke(app, ["deploy", "--target", "aws"])
    assert result.exit_code == 0, result.output
    assert "part" in result.stdout and "postgres" in result.stdout and "started" in result.stdout
    assert "Deployed. Orders API: http://127.0.0.1:8080/orders" in result.stdout
    assert "change set" not in result.stdout


def test_a_malformed_param_is_a_usage_error(built: Any) -> None:
    """--param without '=' exits 2 with the pair named, before any target is built."""
    asked = built(CHANGE_SET)
    result = runner.invoke(app, ["deploy", "--target", "aws", "--param", "WarehouseMode"])
    assert result.exit_code == 2 and "--param 'WarehouseMode' is not KEY=VALUE" in result.output
    assert asked == []


def test_the_local_target_refuses_a_template_parameter_in_one_line(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy --target local --param exits 2 with one line, and nothing is deployed."""
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path / "home"))
    deployed: list[Any] = []
    monkeypatch.setattr(LocalTarget, "deploy", lambda *args, **kwargs: deployed.append(args))
    result = runner.invoke(app, ["deploy", "--target", "local", "--plan", "--param", "K=V"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --param applies to --target aws only (the local target has no template; its settings are "
        "deploy's own flags)"]
    assert deployed == [] and not (tmp_path / "home").exists()


def test_the_local_plan_applies_nothing_and_costs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy --target local --plan starts nothing, creates no home, and its estimate is $0.00 (--json too)."""
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path / "home"))
    deployed: list[Any] = []
    monkeypatch.setattr(LocalTarget, "deploy", lambda *args, **kwargs: deployed.append(args))
    result = runner.invoke(app, ["deploy", "--target", "local", "--plan", "--json", "--orders-per-month", "5000"])
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    assert planned["action"] == "planned" and planned["changed"] is False
    assert planned["estimate"]["total_usd"] == 0.0 and planned["estimate"]["per_million_orders_usd"] == 0.0
    assert planned["estimate"]["orders_per_month"] == 5000
    assert [line["monthly_usd"] for line in planned["estimate"]["lines"]] == [0.0]
    text = runner.invoke(app, ["deploy", "--target", "local", "--plan"])
    assert text.exit_code == 0, text.output
    assert "it costs nothing ($0.00 a month)" in text.stdout and "total: $0.00 a month" in text.stdout
    assert deployed == [] and not (tmp_path / "home").exists()


def test_a_plan_prints_the_estimate_line_by_line(built: Any) -> None:
    """--plan shows each line's part, detail and $/month, then the total and the cost per million orders;
    --orders-per-month reaches the target; --json carries the estimate as it came."""
    asked = built({**CHANGE_SET, "estimate": ESTIMATE})
    result = runner.invoke(app, ["deploy", "--target", "aws", "--plan", "--orders-per-month", "2000000"])
    assert result.exit_code == 0, result.output
    assert asked[0]["orders_per_month"] == 2_000_000
    assert "monthly cost at 2,000,000 orders (list prices of 2026-12-02)" in result.stdout
    assert "4 RPU x 60 s minimum x 3,369 syncs" in result.stdout and "84.23" in result.stdout
    assert "total: $91.23 a month; each further million orders adds $3.50" in result.stdout
    assert "assumes: one order per API request" in result.stdout
    as_json = runner.invoke(app, ["deploy", "--target", "aws", "--plan", "--json"])
    assert json.loads(as_json.stdout)["estimate"] == ESTIMATE


def test_a_deploy_prints_the_estimate_before_it_creates_anything(built: Any) -> None:
    """The estimate event the AWS deploy sends before executing its change set is shown (on stderr, as the stack
    events are), and the result ends with the total."""
    built({**CHANGE_SET, "action": "created", "changed": True, "record": {"api_url": "https://x"},
           "estimate": ESTIMATE})
    result = runner.invoke(app, ["deploy", "--target", "aws"])
    assert result.exit_code == 0, result.output
    assert "monthly cost at 2,000,000 orders" in result.stderr and "total: $91.23" in result.stderr
    assert "Estimated cost: $91.23 a month at 2,000,000 orders" in result.stdout


@pytest.mark.parametrize(("target", "recorded", "flags", "every"), [
    ("aws", {}, [], 780.0),  # 13 min: the longest whole minutes a 900 s SLA allows with a 120 s run
    ("aws", {}, ["--sla", "600"], 480.0),
    # A recorded choice stays; an earlier release's record (no list of choices) holding its 5-minute default
    # takes today's (tests/unit/test_settings_upgrade.py).
    ("aws", {"sync_every_seconds": 300.0, "sla_seconds": 900.0, "chosen": ["sync_every_seconds"]}, [], 300.0),
    ("aws", {"sync_every_seconds": 300.0, "sla_seconds": 900.0}, [], 780.0),
    ("aws", {}, ["--sync-every", "5m"], 300.0),
    ("local", {}, [], 300.0),
])
def test_a_first_aws_deploy_syncs_as_seldom_as_the_sla_allows(built: Any, target: str, recorded: dict[str, Any],
                                                              flags: list[str], every: float) -> None:
    """With no --sync-every, a first AWS deploy takes config.default_sync_every; the local target 5 minutes;
    what an earlier deploy recorded as chosen stays."""
    asked = built(ACTIONS, recorded)
    result = runner.invoke(app, ["deploy", "--target", target, *flags])
    assert result.exit_code == 0, result.output
    assert asked[0]["target"].deployed[0].sync_every_seconds == every


def test_the_aws_target_is_built_with_its_deploy_options(tmp_path: Path) -> None:
    """get_target gives --plan and --param to the AWS target's constructor; its deploy takes neither."""
    target = get_target("aws", tmp_path, "prod", plan=True, parameters={"WarehouseMode": "provisioned"})
    assert isinstance(target, AwsTarget)
    assert target.options.plan_only is True and dict(target.options.parameters) == {"WarehouseMode": "provisioned"}
    assert get_target("aws", tmp_path).options.plan_only is False
    with pytest.raises(TypeError):
        target.deploy(PipelineSettings(), plan=True)  # type: ignore[call-arg]
    with pytest.raises(TxpipeError, match="applies to --target aws only"):
        get_target("local", tmp_path, parameters={"K": "V"})
    assert get_target("aws", tmp_path, orders_per_month=7).options.orders_per_month == 7

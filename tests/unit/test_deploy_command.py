"""`txpipe deploy` (txpipe_cli/commands/pipeline.py) over the target-neutral interface (txpipe_cli/targets.py):
the command hands the AWS-only options to get_target, deploys with the same call on any target, and renders
the result by its shape."""

from __future__ import annotations

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


class FakeTarget:
    """Records the deploy call; answers a scripted result."""

    name = "fake"

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.deployed: list[PipelineSettings] = []

    def deployed_settings(self) -> dict[str, Any]:
        return {}  # a first deploy

    def deploy(self, settings: PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        self.deployed.append(settings)
        return self.result


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """Replaces get_target in the command with one building a FakeTarget; returns how it was asked."""

    def install(result: dict[str, Any]) -> list[dict[str, Any]]:
        asked: list[dict[str, Any]] = []

        def fake_get_target(name: str, home: Path | None = None, stage: str = "dev", *, plan: bool = False,
                            parameters: Mapping[str, str] | None = None) -> FakeTarget:
            asked.append({"name": name, "stage": stage, "plan": plan, "parameters": dict(parameters or {})})
            return FakeTarget(result)

        monkeypatch.setattr(pipeline, "get_target", fake_get_target)
        return asked

    return install


def test_plan_and_params_go_to_the_target_factory_not_to_deploy(built: Any) -> None:
    """--plan and --param K=V configure the target when it is built; a change-set result is shown as one."""
    asked = built(CHANGE_SET)
    result = runner.invoke(app, ["deploy", "--target", "aws", "--stage", "prod", "--plan", "--param",
                                 "WarehouseMode=provisioned", "--param", "StoreBatchSize=20"])
    assert result.exit_code == 0, result.output
    assert asked == [{"name": "aws", "stage": "prod", "plan": True,
                      "parameters": {"WarehouseMode": "provisioned", "StoreBatchSize": "20"}}]
    assert "change set for stack txpipe-dev" in result.stdout and "OrdersQueue" in result.stdout
    assert "A deploy would upload: lambdas/a.zip, templates/txpipe-b.json." in result.stdout
    assert "Plan only: 1 change(s); nothing was created or changed." in result.stdout


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


@pytest.mark.parametrize("flags", [["--plan"], ["--param", "K=V"]])
def test_the_local_target_refuses_aws_options_in_one_line(flags: list[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy --target local --plan (or --param) exits 2 with one line, and nothing is deployed."""
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path / "home"))
    deployed: list[Any] = []
    monkeypatch.setattr(LocalTarget, "deploy", lambda *args, **kwargs: deployed.append(args))
    result = runner.invoke(app, ["deploy", "--target", "local", *flags])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --plan and --param apply to --target aws only (the local target's deploy is already idempotent: "
        "just run it)"]
    assert deployed == [] and not (tmp_path / "home").exists()


def test_the_aws_target_is_built_with_its_deploy_options(tmp_path: Path) -> None:
    """get_target gives --plan and --param to the AWS target's constructor; its deploy takes neither."""
    target = get_target("aws", tmp_path, "prod", plan=True, parameters={"WarehouseMode": "provisioned"})
    assert isinstance(target, AwsTarget)
    assert target.options.plan_only is True and dict(target.options.parameters) == {"WarehouseMode": "provisioned"}
    assert get_target("aws", tmp_path).options.plan_only is False
    with pytest.raises(TypeError):
        target.deploy(PipelineSettings(), plan=True)  # type: ignore[call-arg]
    with pytest.raises(TxpipeError, match="apply to --target aws only"):
        get_target("local", tmp_path, parameters={"K": "V"})

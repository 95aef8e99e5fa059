"""infra/template.yaml against lambdas/core/defaults.py, the one place of every default.

Every TXPIPE_ variable a function reads is set in the template's function environment or defaulted in
defaults.ENVIRONMENT (or is local only); every value the template writes down that defaults.py also defines is
the same value.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import loads

from lambdas.core import defaults
from lambdas.core.db import Endpoint
from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.planner import template_parameters
from txpipe_cli.config import PipelineSettings, default_sync_every
from txpipe_cli.local.state import LocalState

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
VARIABLE = re.compile(r"TXPIPE_[A-Z0-9_]*[A-Z0-9]")
# The local queue's database (a pgqueue:// URL): read only on the local target, which sets it; on AWS the queue
# is SQS, named by TXPIPE_QUEUE_URL alone.
LOCAL_ONLY = frozenset(Endpoint("host", 1, "db", "secret").to_env("queue"))
# Switches only tests set: unset is the one production behaviour. TXPIPE_WAREHOUSE_SSL=false is the loopback
# Redshift shim's (a function refuses it for any other host); unset, the warehouse speaks TLS.
TEST_SWITCHES = frozenset({"TXPIPE_WAREHOUSE_SSL"})


def read_variables() -> set[str]:
    """Every TXPIPE_ variable the code under lambdas/ reads: a string that is a variable's whole name, a
    `setting("NAME", default)` (TXPIPE_NAME), and the endpoint variables of every database a function reaches
    (Endpoint.from_env builds their names)."""
    found: set[str] = set()
    for path in sorted((ROOT / "lambdas").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and VARIABLE.fullmatch(node.value):
                found.add(node.value)
            elif isinstance(node, ast.Call) and _called(node) == "setting" and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(f"TXPIPE_{node.args[0].value}")
    databases = {database for function in FUNCTIONS.values() for database in function.databases}
    for database in databases:
        found |= set(Endpoint("host", 1, "db", "secret").to_env(database))
    return found


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return loads(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def set_by_template(template: dict[str, Any]) -> dict[str, Any]:
    """Each variable any function's Environment sets, with its value (the last function's, if several)."""
    variables: dict[str, Any] = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            variables.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    return variables


def test_the_scan_finds_what_the_functions_read() -> None:
    """The scan sees the sync's settings, the queue's, the warehouse's and the endpoints (a scan that found
    nothing would pass everything below)."""
    read = read_variables()
    assert {"TXPIPE_SYNC_MAX_SECONDS", "TXPIPE_SYNC_BATCH_ROWS", "TXPIPE_QUEUE_URL",
            "TXPIPE_QUEUE_MAX_RECEIVE_COUNT", "TXPIPE_WAREHOUSE_KIND", "TXPIPE_OLTP_HOST",
            "TXPIPE_QUEUE_SECRET"} <= read


def test_every_variable_a_function_reads_is_set_or_defaulted(set_by_template: dict[str, Any]) -> None:
    """A variable the template does not set has its default in defaults.ENVIRONMENT, unless it is local only
    or a switch only tests set."""
    unaccounted = read_variables() - set(set_by_template) - set(defaults.ENVIRONMENT) - LOCAL_ONLY - TEST_SWITCHES
    assert not unaccounted, f"set these in infra/template.yaml or default them in defaults.ENVIRONMENT: {unaccounted}"


def test_every_default_is_read_by_a_function() -> None:
    """No default outlives the code that read it."""
    assert set(defaults.ENVIRONMENT) <= read_variables()


def test_the_template_writes_each_default_as_defaults_py_does(set_by_template: dict[str, Any]) -> None:
    """A variable the template sets to a literal that defaults.py also defines holds the same value
    (TXPIPE_SYNC_MAX_SECONDS "100")."""
    both = set(set_by_template) & set(defaults.ENVIRONMENT)
    assert "TXPIPE_SYNC_MAX_SECONDS" in both
    for name in both:
        assert set_by_template[name] == defaults.ENVIRONMENT[name], name


def test_local_only_and_test_switches_are_not_in_the_template(set_by_template: dict[str, Any], tmp_path: Path) -> None:
    """The local queue's endpoint is set by the local target's environment builder for every function that
    reaches the queue, and never by the template; no deployment sets a test switch."""
    state = LocalState(home=tmp_path, pg_port=5432)
    for function in FUNCTIONS.values():
        variables = state.function_env(function.name)
        assert (LOCAL_ONLY <= set(variables)) == ("queue" in function.databases), function.name
        assert not TEST_SWITCHES & set(variables)
    assert not (LOCAL_ONLY | TEST_SWITCHES) & set(set_by_template)


def test_the_orders_queue_holds_the_defaults(template: dict[str, Any]) -> None:
    """maxReceiveCount is MAX_RECEIVE_COUNT; the visibility timeout is six times the store function's timeout
    (lambdas/functions.py), 360 s; StoreBatchSize defaults to STORE_BATCH_SIZE."""
    queue = template["Resources"]["OrdersQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == defaults.MAX_RECEIVE_COUNT
    assert queue["VisibilityTimeout"] == (
        defaults.SQS_VISIBILITY_TIMEOUTS_PER_STORE_TIMEOUT * FUNCTIONS["store"].timeout_seconds) == 360
    assert template["Parameters"]["StoreBatchSize"]["Default"] == defaults.STORE_BATCH_SIZE


def test_the_parameters_deploy_sets_default_to_what_deploy_sends_by_default(template: dict[str, Any]) -> None:
    """A stack made from the template's defaults is the stack a deploy with no flag asks for: SLA, schedule,
    alarm, refresh time and its time zone (deploy sends the operator's --timezone, else UTC)."""
    sla = defaults.SLA_SECONDS
    settings = PipelineSettings(sync_every_seconds=default_sync_every("aws", sla))
    sent = template_parameters("dev", settings, "bucket", "key", {})
    for name in ("SyncScheduleMinutes", "SlaSeconds", "SlaAtRiskSeconds", "SlaAlarmPeriodSeconds", "RefreshCron",
                 "RefreshTimezone"):
        assert str(template["Parameters"][name]["Default"]) == sent[name], name

"""infra/template.yaml declares the five functions exactly as lambdas/functions.py, the one list of them, does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.functions import FUNCTIONS, Function
from tests.support.template import TEMPLATE, resources
from txpipe_cli.aws.package import compile_template
from txpipe_cli.aws.planner import function_name

# The environment variables that reach each database (lambdas/core/env.py reads them).
REACHES = {"oltp": "TXPIPE_OLTP_HOST", "warehouse": "TXPIPE_WAREHOUSE_HOST", "queue": "TXPIPE_QUEUE_URL"}


@pytest.fixture(scope="module")
def declared() -> dict[str, dict[str, Any]]:
    """The template's Lambda functions by registry name, as CloudFormation receives them (compiled)."""
    template = json.loads(compile_template(TEMPLATE.read_text()).body)
    functions = resources(template, "AWS::Lambda::Function")
    by_name = {}
    for logical_id, function in functions.items():
        name = function["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("txpipe-${Stage}-")
        assert logical_id == f"{name.capitalize()}Function"
        by_name[name] = function["Properties"]
    return by_name


def test_the_template_has_exactly_the_registered_functions(declared: dict[str, dict[str, Any]]) -> None:
    """Five functions in both, named alike (and as the deployer names them on AWS)."""
    assert sorted(declared) == sorted(FUNCTIONS) and len(FUNCTIONS) == 5
    assert function_name("ci", "ops") == "txpipe-ci-ops"


@pytest.mark.parametrize("function", FUNCTIONS.values(), ids=list(FUNCTIONS))
def test_each_function_is_declared_as_registered(function: Function, declared: dict[str, dict[str, Any]]) -> None:
    """Handler, timeout, memory, description, VPC placement and the databases it reaches agree."""
    properties = declared[function.name]
    assert properties["Handler"] == function.handler
    assert properties["Timeout"] == function.timeout_seconds
    assert properties["MemorySize"] == function.memory_mb
    assert properties["Description"] == function.description
    assert ("VpcConfig" in properties) == function.in_vpc
    variables = properties["Environment"]["Variables"]
    assert {db for db, variable in REACHES.items() if variable in variables} == set(function.databases)

"""lambdas/functions.py's declared AWS calls against the code: what a handler calls must be declared (the
recording in tests/support/aws_calls.py, on for every test), and what is declared must be called somewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.functions import FUNCTIONS
from tests.support.aws_calls import recording

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/q"


def _as(module: str, body: Any) -> Any:
    """`body` run as if from the named handler module (its frame's module name is what attributes a call)."""
    namespace: dict[str, Any] = {"__name__": module}
    exec("def run(body):\n    return body()\n", namespace)  # noqa: S102 - a fixed two-line frame, no input
    return namespace["run"](body)


@pytest.fixture
def sqs() -> Any:
    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_response("purge_queue", {}, {"QueueUrl": QUEUE})
        yield client


def test_an_undeclared_call_from_a_handler_is_a_violation(sqs: Any, declared_aws_calls: Any) -> None:
    """store may not purge a queue: the recording names the function, the service and the operation."""
    with recording() as recorder:
        _as("lambdas.store", lambda: sqs.purge_queue(QueueUrl=QUEUE))
    declared_aws_calls.violations.clear()  # the session-wide recording saw it too: this one was on purpose
    assert recorder.calls == [("store", "sqs", "PurgeQueue")]
    assert recorder.violations == ["the store function called sqs PurgeQueue, which lambdas/functions.py does "
                                   "not declare for it"]


def test_a_declared_call_and_a_call_outside_any_handler_pass(sqs: Any) -> None:
    with recording() as recorder:
        _as("lambdas.ops", lambda: sqs.purge_queue(QueueUrl=QUEUE))
    assert recorder.calls == [("ops", "sqs", "PurgeQueue")] and recorder.violations == []


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_declared_call_is_made_by_the_code(name: str) -> None:
    """No stale declaration: each operation a function declares (but a driver's) is called in lambdas/."""
    source = "\n".join(p.read_text() for p in LAMBDAS.rglob("*.py"))
    for call in FUNCTIONS[name].calls:
        if call.via:
            continue  # made inside the driver: tests/integration/test_redshift_iam_login.py shows which
        for operation in call.operations:
            assert f".{_snake(operation)}(" in source, f"{name} declares {call.service} {operation}; no code calls it"

"""The sync's backlog metrics, printed in CloudWatch's Embedded Metric Format (EMF) for the SLA-at-risk alarm.

Each emitted line is checked against the rules of the EMF specification,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html:
the log event is one JSON object; `_aws` holds `Timestamp` (a number of milliseconds since the epoch) and
`CloudWatchMetrics`, an array of MetricDirectives (`Namespace`, `Dimensions`: arrays of at most 30 dimension
keys, `Metrics`: at most 100 MetricDefinitions with a `Name`); every dimension key is a top-level member with a
string value and every metric name a top-level member with a number (or an array of numbers) as its value.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode.cfn_yaml import loads

from lambdas.core.metrics import publish_backlog

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
# CloudWatch's units (MetricDatum.Unit), the values a MetricDefinition's optional Unit may take.
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}
NOW = 1_767_225_600.123  # 2026-01-01T00:00:00.123Z


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_metrics(line: str) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], Any]:
    """Validates one log event against the EMF specification's rules; returns what CloudWatch would extract:
    {(namespace, metric name, ((dimension key, value), ...)): value}."""
    assert "\n" not in line.rstrip("\n"), "one log event is one line"
    document = json.loads(line)  # the whole event is JSON: no text before or after the object
    assert isinstance(document, dict), "the root node is a JSON object"
    meta = document["_aws"]
    assert isinstance(meta, dict)
    assert isinstance(meta["Timestamp"], int) and not isinstance(meta["Timestamp"], bool), "Timestamp: integer ms"
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    extracted = {}
    for directive in directives:
        assert set(directive) <= {"Namespace", "Dimensions", "Metrics"}, "no other members in a MetricDirective"
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 1 <= len(namespace) <= 255
        dimension_sets = directive["Dimensions"]
        assert isinstance(dimension_sets, list)
        for dimension_set in dimension_sets:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30, "at most 30 dimension keys"
            for key in dimension_set:
                assert isinstance(key, str)
                assert isinstance(document.get(key), str), f"dimension {key!r} is a top-level string member"
        definitions = directive["Metrics"]
        assert isinstance(definitions, list) and 1 <= len(definitions) <= 100, "at most 100 metrics"
        for definition in definitions:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            name = definition["Name"]
            assert isinstance(name, str) and 1 <= len(name) <= 1024
            assert definition.get("Unit", "None") in UNITS
            value = document.get(name)
            assert _is_number(value) or (isinstance(value, list) and 0 < len(value) <= 100
                                         and all(map(_is_number, value))), f"metric {name!r} is a top-level number"
            for dimension_set in dimension_sets:
                extracted[(namespace, name, tuple((key, document[key]) for key in dimension_set))] = value
    return extracted


def test_backlog_is_one_emf_line_on_stdout_with_the_stage(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """With a namespace configured, one EMF line on stdout carries both metrics with the Stage dimension; no
    boto3 client (cloudwatch or other) is built, so no VPC endpoint or PutMetricData permission is needed."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"no AWS client may be built: {args}")

    monkeypatch.setattr(boto3, "client", refuse)
    monkeypatch.setattr(boto3.session.Session, "client", refuse)
    env = {"TXPIPE_METRICS_NAMESPACE": "txpipe", "TXPIPE_STAGE": "prod"}
    assert publish_backlog(42.5, 7, env=env, clock=lambda: NOW) is True
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n")
    stage = (("Stage", "prod"),)
    assert emf_metrics(out) == {("txpipe", "OldestPendingSeconds", stage): 42.5, ("txpipe", "PendingOrders", stage): 7}
    document = json.loads(out)
    assert document["_aws"]["Timestamp"] == 1_767_225_600_123
    assert {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {
        "OldestPendingSeconds": "Seconds", "PendingOrders": "Count"}


def test_an_empty_backlog_and_an_odd_stage_still_make_a_valid_line() -> None:
    """Zero pending (the usual idle run) is published as such, and a stage is always a string member."""
    out = io.StringIO()
    assert publish_backlog(0, 0, env={"TXPIPE_METRICS_NAMESPACE": "txpipe/dev", "TXPIPE_STAGE": 'a "b"\n'},
                           out=out, clock=lambda: NOW) is True
    stage = (("Stage", 'a "b"\n'),)
    assert emf_metrics(out.getvalue()) == {("txpipe/dev", "OldestPendingSeconds", stage): 0.0,
                                           ("txpipe/dev", "PendingOrders", stage): 0}


def test_nothing_is_printed_without_a_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    """The local target sets no namespace: nothing is printed."""
    assert publish_backlog(1.0, 1, env={}) is False
    assert publish_backlog(1.0, 1, env={"TXPIPE_METRICS_NAMESPACE": ""}) is False
    assert capsys.readouterr().out == ""


def test_the_sla_at_risk_alarm_watches_the_metric_the_sync_function_emits(capsys: pytest.CaptureFixture[str]
                                                                          ) -> None:
    """The alarm's namespace, metric and dimension are what the line declares with the sync function's own
    environment (read from infra/template.yaml): CloudWatch extracts exactly the metric the alarm reads."""
    template = loads(TEMPLATE.read_text())
    resources = template["Resources"]
    variables = resources["SyncFunction"]["Properties"]["Environment"]["Variables"]
    alarm = resources["SlaAtRiskAlarm"]["Properties"]
    assert variables["TXPIPE_STAGE"] == {"Ref": "Stage"} and alarm["Dimensions"] == [
        {"Name": "Stage", "Value": {"Ref": "Stage"}}]
    env = {"TXPIPE_METRICS_NAMESPACE": variables["TXPIPE_METRICS_NAMESPACE"], "TXPIPE_STAGE": "prod"}
    assert publish_backlog(901.0, 3, env=env) is True
    extracted = emf_metrics(capsys.readouterr().out)
    assert extracted[(alarm["Namespace"], alarm["MetricName"], (("Stage", "prod"),))] == 901.0

"""The sync's backlog metrics, published to CloudWatch (moto) for the SLA-at-risk alarm."""

from __future__ import annotations

from typing import Any

import boto3

from lambdas.core.metrics import publish_backlog


def test_backlog_metrics_are_published_with_the_stage(aws: Any) -> None:
    """With a namespace configured, the oldest pending age and the backlog land in CloudWatch."""
    cloudwatch = boto3.client("cloudwatch")
    env = {"TXPIPE_METRICS_NAMESPACE": "txpipe", "TXPIPE_STAGE": "prod"}
    assert publish_backlog(42.5, 7, client=cloudwatch, env=env) is True
    metrics = cloudwatch.list_metrics(Namespace="txpipe")["Metrics"]
    assert {m["MetricName"] for m in metrics} == {"OldestPendingSeconds", "PendingOrders"}
    assert all(m["Dimensions"] == [{"Name": "Stage", "Value": "prod"}] for m in metrics)


def test_nothing_is_published_without_a_namespace() -> None:
    """The local target sets no namespace: no client is built and nothing is sent."""

    class Refuses:
        def put_metric_data(self, **_: Any) -> None:
            raise AssertionError("must not publish")

    assert publish_backlog(1.0, 1, client=Refuses(), env={}) is False

"""CloudWatch metrics the sync publishes, so an alarm sees the SLA at risk before it is breached."""

from __future__ import annotations

import os
from typing import Any


def publish_backlog(oldest_pending_seconds: float, pending: int, *, client: Any = None,
                    env: dict[str, str] | None = None) -> bool:
    """Puts OldestPendingSeconds and PendingOrders (dimension Stage) when TXPIPE_METRICS_NAMESPACE is set.

    Returns whether anything was published: the local target sets no namespace and publishes nothing.
    """
    env = dict(os.environ) if env is None else env
    namespace = env.get("TXPIPE_METRICS_NAMESPACE")
    if not namespace:
        return False
    if client is None:
        import boto3

        client = boto3.client("cloudwatch")
    dimensions = [{"Name": "Stage", "Value": env.get("TXPIPE_STAGE", "default")}]
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "OldestPendingSeconds", "Dimensions": dimensions, "Value": oldest_pending_seconds,
         "Unit": "Seconds"},
        {"MetricName": "PendingOrders", "Dimensions": dimensions, "Value": pending, "Unit": "Count"},
    ])
    return True

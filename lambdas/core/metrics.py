"""The backlog metrics the sync publishes, so an alarm sees the SLA at risk before it is breached.

They go out in CloudWatch's Embedded Metric Format (EMF): one JSON line on stdout per sync run
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
Lambda ships a function's stdout to CloudWatch Logs from outside the function's VPC, and CloudWatch Logs
extracts the metrics from the line: OldestPendingSeconds and PendingOrders in TXPIPE_METRICS_NAMESPACE with
the dimension Stage, the very metric the SLA-at-risk alarm watches. No AWS API is called, so the function
needs neither cloudwatch:PutMetricData nor a CloudWatch (monitoring) interface endpoint in its VPC, and a
run never waits on one. A Python `print` reaches CloudWatch Logs as its plain text whatever the function's
log format, which is what EMF asks for (the whole log event one JSON object).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

DIMENSION = "Stage"
OLDEST_PENDING = "OldestPendingSeconds"
PENDING = "PendingOrders"


def backlog_document(oldest_pending_seconds: float, pending: int, *, namespace: str, stage: str,
                     timestamp_ms: int) -> dict[str, Any]:
    """The EMF document: the metadata under `_aws`, then the dimension and each metric as top-level members."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": OLDEST_PENDING, "Unit": "Seconds"}, {"Name": PENDING, "Unit": "Count"}],
            }],
        },
        DIMENSION: stage,
        OLDEST_PENDING: float(oldest_pending_seconds),
        PENDING: int(pending),
    }


def publish_backlog(oldest_pending_seconds: float, pending: int, *, env: dict[str, str] | None = None,
                    out: TextIO | None = None, clock: Callable[[], float] = time.time) -> bool:
    """Prints the backlog as one EMF line to `out` (stdout) when TXPIPE_METRICS_NAMESPACE is set.

    Returns whether anything was published: the local target sets no namespace and prints nothing.
    """
    env = dict(os.environ) if env is None else env
    namespace = env.get("TXPIPE_METRICS_NAMESPACE")
    if not namespace:
        return False
    document = backlog_document(oldest_pending_seconds, pending, namespace=namespace,
                                stage=str(env.get("TXPIPE_STAGE", "default")), timestamp_ms=int(clock() * 1000))
    # One line (json.dumps writes no newline without indent), flushed at once: a Lambda frozen or timed out
    # after the return would otherwise lose a buffered line, and with it the metric.
    line = json.dumps(document, separators=(",", ":"), allow_nan=False)
    print(line, file=sys.stdout if out is None else out, flush=True)
    return True

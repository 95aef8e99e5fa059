"""sync function: scheduled event -> outbox rows loaded into the warehouse fact table (TXPIPE_WAREHOUSE_KIND's
backend: PostgreSQL COPY locally, Redshift COPY from S3 on AWS; see lambdas.core.sync)."""

from __future__ import annotations

from typing import Any

from lambdas.core import defaults, env, log
from lambdas.core.metrics import publish_backlog
from lambdas.core.sync import run_sync


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Leave headroom before the function's timeout: a batch in flight must finish and commit (the budget and
    # the batch size: lambdas/core/defaults.py).
    budget = env.setting("SYNC_MAX_SECONDS", defaults.SYNC_MAX_SECONDS)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000 * 0.5)
    # env.warehouse, not env.warehouse(): run_sync connects only when it has orders to move, so a run with the
    # outbox empty does not wake a warehouse billed by the wake (Redshift Serverless; see lambdas.core.sync).
    # The backend is built first all the same: a bad warehouse setting is refused before anything is claimed.
    result = run_sync(env.oltp(), env.warehouse, backend=env.warehouse_backend(),
                      batch_rows=int(env.setting("SYNC_BATCH_ROWS", defaults.SYNC_BATCH_ROWS)), max_seconds=budget)
    # feeds the SLA-at-risk alarm on AWS: one Embedded Metric Format line on stdout, every run
    publish_backlog(result.oldest_pending_seconds, result.pending, env=env.environ())
    # and, apart from the metric, what the run did: one log line
    log.emit("sync", f"moved {log.count(result.synced, 'order')}" if result.synced else "nothing to move",
             moved=result.synced, already_present=result.already_present, pending=result.pending,
             being_moved=result.being_moved, seconds=result.seconds,
             rows_per_second=round(result.synced / result.seconds) if result.seconds > 0 else None,
             batches=result.batches, oldest_pending_seconds=result.oldest_pending_seconds,
             trigger=_trigger(event))
    return result.to_dict()


def _trigger(event: dict[str, Any]) -> str:
    """What started the run: the schedule (EventBridge) or the source the CLI names (txpipe.sync-now)."""
    source = event.get("source") if isinstance(event, dict) else None
    if source in (None, "aws.events", "aws.scheduler") or event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return str(source)[:60]

"""store function: SQS event -> OLTP orders + outbox, with partial batch failures."""

from __future__ import annotations

from typing import Any

from lambdas.core import env, log
from lambdas.core.store import process_records


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = process_records(event["Records"], env.oltp, env.reset_oltp, env.queue())
    # One line per batch. Orders: stored, already present (a redelivery), rejected (kept aside with a reason);
    # messages: retried (hidden for a backoff), dead-lettered.
    messages, retried = len(event["Records"]), len(result.failures)
    told = [f"{log.count(result.stored, 'order')} stored"]
    told += [f"{result.duplicates} already present"] if result.duplicates else []
    told += [f"{result.rejected} rejected"] if result.rejected else []
    told += [f"{log.count(retried, 'message')} to retry"] if retried else []
    told += [f"{result.dead_lettered} dead-lettered"] if result.dead_lettered else []
    log.emit("store", f"{log.count(messages, 'message')}: {', '.join(told)}",
             level=log.WARNING if retried or result.dead_lettered else log.INFO,
             messages=messages, stored=result.stored, already_present=result.duplicates, rejected=result.rejected,
             retried=retried, dead_lettered=result.dead_lettered)
    return result.response()

"""ops function: invoked directly by txpipe for migrations and read-only reports.

On AWS the databases are private, so the CLI asks this function (inside the VPC)
instead of connecting itself. Event: {"action": ..., **arguments}; answer: the action's result as
lambdas/core/contract.py types it (`to_dict`), or {"error": reason} for a caller's mistake.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from lambdas.core import access, contract, customers, env, log, rejections, reporting, schema
from lambdas.core.reasons import one_line


def _migrate(event: dict[str, Any]) -> contract.Migrated:
    """Both databases' pending migrations, then who may do what in each (the warehouse's users and grants are
    its own: Warehouse.grant), then the reference population."""
    oltp, warehouse, destination = env.oltp(), env.warehouse(), env.warehouse_backend()
    applied = {"oltp": schema.migrate(oltp, schema.OLTP_MIGRATIONS), "warehouse": destination.migrate(warehouse)}
    access.apply_statements(oltp, access.OLTP_ACCESS)
    destination.grant(warehouse, env.environ())
    return contract.Migrated(applied=applied, state_population_rows=schema.load_state_population(warehouse))


def _report(event: dict[str, Any]) -> contract.Report:
    """{"states": [codes]} or {"all": true}: the states asked for, each in one shape (its totals, rank and top 3
    pizza types), and, unless "freshness" is false (the dashboard asks for it apart), how fresh the views are."""
    warehouse = env.warehouse()
    if event.get("all"):
        states = reporting.all_states_report(warehouse)
    else:
        ranked = reporting.all_states(warehouse)
        # Each state once: the reply stays bounded (51 states) whatever the caller sends.
        codes = dict.fromkeys(map(str, event["states"]))
        states = [reporting.state_report(warehouse, code, ranked) for code in codes]
    rows = [contract.StateReport.from_dict(state) for state in states]
    return contract.Report(freshness=_freshness() if event.get("freshness", True) else None, states=rows)


def _freshness(event: dict[str, Any] | None = None) -> contract.Freshness:
    """When the views were refreshed, how many stored orders they lack, and when the last sync ended."""
    warehouse = env.warehouse()
    last = reporting.last_sync(warehouse)
    result = {**reporting.views_freshness(warehouse), "last_sync_at": last["finished_at"] if last else None}
    try:
        result["awaiting_sync"] = reporting.awaiting_sync(env.oltp())
    except Exception as exc:  # noqa: BLE001 - the report reads the warehouse; OLTP down leaves this one count out
        env.drop_connections()
        result.update(awaiting_sync=None, awaiting_sync_error=one_line(exc))
    return contract.Freshness.from_dict(result)


def _sla_report(event: dict[str, Any]) -> contract.SlaReport:
    return contract.SlaReport.from_dict(reporting.sla_report(
        env.oltp(), env.warehouse(), sla_seconds=float(event["sla_seconds"]), since_seconds=event.get("since_seconds"),
        include_history=bool(event.get("include_history"))))


def _status(event: dict[str, Any]) -> contract.Status:
    """What each store holds; a store that cannot be reached is reported with its error, not raised,
    so that one down database does not hide the others."""
    result: dict[str, Any] = {"errors": {}}
    # Rejected orders: the pending ones only; those stored since are resolved (lambdas.core.rejections).
    for name, read in (("oltp", lambda: {**reporting.oltp_status(env.oltp()),
                                         "rejected_orders": rejections.pending_count(env.oltp())}),
                       ("warehouse", lambda: {"last_sync": reporting.last_sync(env.warehouse())}),
                       ("queue", lambda: {"queue": _queue_stats().to_dict()})):
        try:
            result.update(read())
        except Exception as exc:  # noqa: BLE001 - reported to the operator, with the others still shown
            env.drop_connections()
            result["errors"][name] = one_line(exc)
    return contract.Status.from_dict(result)


def _queue_stats() -> contract.QueueDepth:
    stats = env.queue().stats()
    return contract.QueueDepth(visible=stats.visible, in_flight=stats.in_flight, dead_letters=stats.dead_letters)


def _dlq_list(event: dict[str, Any]) -> contract.DeadLetters:
    now = datetime.now(UTC)
    # Bounded here too (the CLI caps it): a thousand listed dead letters keep the reply far under 6 MB.
    listed = env.queue().list_dead_letters(max(1, min(int(event.get("limit", 50)), DLQ_LIST_LIMIT)))
    reasons: dict[str, int] = {}
    for dead in listed:
        reasons[dead.reason] = reasons.get(dead.reason, 0) + 1
    return contract.DeadLetters(count=env.queue().stats().dead_letters, listed=len(listed), reasons=reasons,
                                messages=[contract.DeadLetter.from_dict(d.to_dict(now)) for d in listed])


def _dlq_show(event: dict[str, Any]) -> contract.DeadLetter:
    wanted = str(event["message_id"])
    for dead in env.queue().list_dead_letters(DLQ_SCAN_LIMIT):
        if dead.message_id == wanted:
            return contract.DeadLetter.from_dict(dead.to_dict(datetime.now(UTC), body=True))
    raise ValueError(f"no dead letter {wanted!r} (txpipe dlq list shows their ids)")


def _dlq_redrive(event: dict[str, Any]) -> contract.Redrive:
    return contract.Redrive.from_dict(env.queue().redrive())


def _dlq_purge(event: dict[str, Any]) -> contract.Purged:
    return contract.Purged(purged=env.queue().purge_dead_letters())


def _rejected(event: dict[str, Any]) -> contract.Rejected:
    """The pending rejected orders' counts and a page of them; "all": true lists the resolved ones too."""
    oltp = env.oltp()
    return contract.Rejected.from_dict({
        **rejections.summary(oltp),
        "rows": rejections.page(oltp, after_id=int(event.get("after_id", 0)), limit=int(event.get("limit", 100)),
                                reason=event.get("reason"), resolved=bool(event.get("all")))})


def _rejected_purge(event: dict[str, Any]) -> contract.Purged:
    """{"resolved": true}: deletes the rejected orders stored since; nothing else can be purged."""
    if event.get("resolved") is not True:
        raise ValueError("rejected_purge deletes only the resolved rejected orders: send \"resolved\": true")
    return contract.Purged(purged=rejections.purge_resolved(env.oltp()))


def _customers_stage(event: dict[str, Any]) -> contract.RowsAdded:
    return contract.RowsAdded(staged=customers.add_rows(env.oltp(), str(event["load_id"]), event["rows"],
                                                       first=bool(event.get("first"))))


def _customers_commit(event: dict[str, Any]) -> contract.CustomersCommitted:
    return contract.CustomersCommitted.from_dict(
        customers.commit_load(env.oltp(), str(event["load_id"]), replace=bool(event.get("replace"))))


def _customers_abort(event: dict[str, Any]) -> contract.Aborted:
    customers.abort_load(env.oltp(), str(event["load_id"]))
    return contract.Aborted(aborted=True)


def _history_load(event: dict[str, Any]) -> contract.HistoryLoaded:
    """One chunk of `txpipe seed --history`: {"seed", "start", "count", "total", "days", "end": ISO timestamp}."""
    from lambdas.core import history

    return contract.HistoryLoaded.from_dict(history.load_history_chunk(
        env.oltp(), seed=int(event["seed"]), start=int(event["start"]), count=int(event["count"]),
        total=int(event["total"]), days=int(event["days"]), end=datetime.fromisoformat(str(event["end"]))))


DLQ_SCAN_LIMIT = 1000  # dlq show looks this far (SQS cannot fetch a message by id)
DLQ_LIST_LIMIT = 1000  # dlq list shows at most this many

def _queue_depth(event: dict[str, Any]) -> contract.QueueDepth:
    return _queue_stats()


ACTIONS = {"queue_depth": _queue_depth, "migrate": _migrate,
           "customers_stage": _customers_stage, "customers_commit": _customers_commit,
           "customers_abort": _customers_abort, "report": _report, "freshness": _freshness,
           "sla_report": _sla_report, "status": _status, "dlq_list": _dlq_list, "dlq_show": _dlq_show,
           "dlq_redrive": _dlq_redrive, "dlq_purge": _dlq_purge, "rejected": _rejected,
           "rejected_purge": _rejected_purge,
           "history_load": _history_load}


# What the CLI (and the dashboard) read for themselves to show the operator something: logged at debug level,
# so that `txpipe logs` shows what was done, not every status and report (--debug shows these too).
READS = frozenset({"queue_depth", "report", "freshness", "sla_report", "status", "dlq_list", "dlq_show", "rejected"})


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = str(event.get("action", ""))
    action = ACTIONS.get(name)
    if action is None:
        result = {"error": f"unknown action {event.get('action')!r}; one of {sorted(ACTIONS)}"}
        _log(name, result, 0.0)
        return result
    started = time.monotonic()
    try:
        result = action(event).to_dict()  # the action's contract type, as JSON
    except ValueError as exc:  # a bad argument, e.g. an unknown state: the caller's mistake, not a crash
        result = {"error": str(exc)}
    _log(name, result, time.monotonic() - started)
    return result


def _log(name: str, result: dict[str, Any], seconds: float) -> None:
    """One line per invocation: the action, how long it took, and for the actions that change something their
    counts (the top-level numbers of the result: purged, loaded, moved...), never rows or bodies."""
    counts = {} if name in READS else {key: value for key, value in result.items()
                                       if isinstance(value, int | float) and not isinstance(value, bool)
                                       and key.isidentifier() and key not in ("action", "seconds", "error")}
    error = result.get("error")
    message = f"{name or '(no action)'} refused: {error}" if error else name
    level = log.DEBUG if name in READS else log.WARNING if error else log.INFO
    log.emit("ops", message, level=level, action=name[:60], seconds=round(seconds, 3), **counts,
             **({"error": str(error)} if error else {}))

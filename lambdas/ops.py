"""ops function: invoked directly by txpipe for migrations and read-only reports.

On AWS the databases are private, so the CLI asks this function (inside the VPC)
instead of connecting itself. Event: {"action": ..., **arguments}.
"""

from __future__ import annotations

from typing import Any

from lambdas.core import customers, env, reporting, schema


def _migrate(event: dict[str, Any]) -> dict[str, Any]:
    oltp, warehouse = env.oltp(), env.warehouse()
    applied = {"oltp": schema.migrate(oltp, schema.OLTP_MIGRATIONS),
               "warehouse": schema.migrate(warehouse, schema.WAREHOUSE_MIGRATIONS)}
    return {"applied": applied, "state_population_rows": schema.load_state_population(warehouse)}


def _report(event: dict[str, Any]) -> dict[str, Any]:
    return reporting.state_report(env.warehouse(), str(event["state"]))


def _sla_report(event: dict[str, Any]) -> dict[str, Any]:
    return reporting.sla_report(env.oltp(), env.warehouse(), sla_seconds=float(event["sla_seconds"]),
                                since_seconds=event.get("since_seconds"))


def _status(event: dict[str, Any]) -> dict[str, Any]:
    stats = env.queue().stats()
    return {**reporting.oltp_status(env.oltp()), "last_sync": reporting.last_sync(env.warehouse()),
            "queue": {"visible": stats.visible, "in_flight": stats.in_flight, "dead_letters": stats.dead_letters}}


def _load_customers(event: dict[str, Any]) -> dict[str, Any]:
    return {"loaded": customers.upsert_customers(env.oltp(), event["rows"])}


ACTIONS = {"migrate": _migrate, "load_customers": _load_customers, "report": _report,
           "sla_report": _sla_report, "status": _status}


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = ACTIONS.get(event.get("action", ""))
    if action is None:
        return {"error": f"unknown action {event.get('action')!r}; one of {sorted(ACTIONS)}"}
    try:
        return action(event)
    except ValueError as exc:  # a bad argument, e.g. an unknown state: the caller's mistake, not a crash
        return {"error": str(exc)}

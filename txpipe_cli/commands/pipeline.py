"""deploy, status, destroy: the pipeline's lifecycle on a target."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt, TargetOpt
from txpipe_cli.output import console, err_console, fail, handle_errors, print_json
from txpipe_cli.targets import get_target


@handle_errors
def deploy(
    target: TargetOpt = "local",
    sync_every: Annotated[str, typer.Option(envvar="TXPIPE_SYNC_EVERY",
                                            help="Warehouse sync schedule: 5m, 90s, rate(5 minutes)...")] = "5m",
    sla: Annotated[float, typer.Option("--sla", envvar="TXPIPE_SLA_SECONDS",
                                       help="Freshness SLA in seconds (OLTP accept -> warehouse load).")] = 900.0,
    refresh_at: Annotated[str, typer.Option(envvar="TXPIPE_REFRESH_AT",
                                            help="Daily view refresh time, HH:MM.")] = "02:00",
    timezone: Annotated[str | None, typer.Option(envvar="TXPIPE_TIMEZONE",
                                                 help="IANA time zone for the refresh (default: local).")] = None,
    visibility_timeout: Annotated[float, typer.Option(min=1, envvar="TXPIPE_VISIBILITY_TIMEOUT",
                                                      help="Seconds a received order stays hidden.")] = 30.0,
    max_receive_count: Annotated[int, typer.Option(min=1, envvar="TXPIPE_MAX_RECEIVE_COUNT",
                                                   help="Receives before an order goes to the DLQ.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Provision or update everything the pipeline needs, idempotently.

    On the local target: a PostgreSQL server (OLTP, warehouse and queue databases),
    and a background runtime serving the HTTP API, the queue pollers and the
    schedules. Running it again changes nothing, or restarts what has died.
    Refuses a sync schedule that cannot meet the SLA.
    """
    settings = config.PipelineSettings(sla_seconds=sla, sync_every_seconds=config.parse_duration(sync_every),
                                       refresh_at=refresh_at, timezone=timezone,
                                       visibility_timeout_seconds=visibility_timeout,
                                       max_receive_count=max_receive_count).validate()
    chosen = get_target(target)
    with err_console.status("deploying...") as spinner:
        result = chosen.deploy(settings, step=lambda name: spinner.update(f"deploying: {name}..."))
    if as_json:
        print_json(result)
        return
    table = Table("part", "state", title=f"txpipe deploy --target {target}")
    for part, action in result["actions"].items():
        table.add_row(part, action)
    console.print(table)
    console.print("Nothing to change: every part is running and up to date." if not result["changed"]
                  else f"Deployed. Orders API: {result['api_url']}/orders")


@handle_errors
def status(target: TargetOpt = "local", as_json: JsonOpt = False) -> None:
    """Show each part alive or dead, the queue, dead letters, outbox backlog, last sync and schedules.

    Exits 1 if any part is dead.
    """
    result = get_target(target).status()
    dead = [name for name, part in result["parts"].items() if not part["alive"]]
    if as_json:
        print_json(result)
    else:
        table = Table("part", "alive", "detail", title=f"txpipe status --target {target}")
        for name, part in result["parts"].items():
            detail = ", ".join(f"{k}={v}" for k, v in part.items() if k != "alive")
            table.add_row(name, "[green]alive[/]" if part["alive"] else "[red]dead[/]", detail)
        console.print(table)
        pipeline = result.get("pipeline")
        if pipeline:
            queue = pipeline["queue"]
            facts = Table("measure", "value", title="pipeline")
            for label, value in [
                ("queue: waiting", queue["visible"]), ("queue: in flight", queue["in_flight"]),
                ("dead letters", queue["dead_letters"]), ("outbox backlog", pipeline["outbox_backlog"]),
                ("oldest pending since", pipeline["oldest_pending_at"] or "-"),
                ("rejected orders", pipeline["rejected_orders"]), ("orders (OLTP)", pipeline["orders"]),
                ("customers", pipeline["customers"]),
                ("last sync", (pipeline["last_sync"] or {}).get("finished_at", "never")),
            ]:
                facts.add_row(label, str(value))
            console.print(facts)
        if result.get("pipeline_error"):
            err_console.print(f"pipeline figures unavailable: {result['pipeline_error']}", highlight=False)
        for name, schedule in (result.get("schedules") or {}).items():
            console.print(f"schedule [bold]{name}[/]: next run {schedule['next_run_at']}")
    if dead:
        fail(f"dead: {', '.join(dead)} (run: txpipe deploy to restart)")


@handle_errors
def destroy(
    target: TargetOpt = "local",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop every process txpipe started and remove all its state and data."""
    chosen = get_target(target)
    if not yes:
        typer.confirm(f"Destroy the {target} deployment and delete all its data?", abort=True)
    result = chosen.destroy()
    if as_json:
        print_json(result)
    elif result["destroyed"]:
        console.print(f"Destroyed the {target} deployment.")
    else:
        console.print(f"Nothing to destroy: {result['reason']}.")

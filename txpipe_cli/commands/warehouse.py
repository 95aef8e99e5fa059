"""sync-now, refresh-views, sla-report: the warehouse side of the day (report: commands/report.py)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lambdas.core.contract import SlaHistory, SlaReport
from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import ExitStatus, OptionError
from txpipe_cli.humanize import duration, moment, plural
from txpipe_cli.ops_client import OpsClient
from txpipe_cli.output import console, err_console, folding_table, handle_errors, interrupted, print_json
from txpipe_cli.targets import Target, get_target


@handle_errors
def sync_now(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    queue_wait: Annotated[float, typer.Option(
        min=0, help="First wait up to this many seconds for orders still on the queue to be stored, so that "
                    "orders just sent are synced too (0: do not wait).")] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Run a warehouse sync now, wait for it, and print what moved.

    Orders the API accepted a moment ago may still be on the queue: the sync waits (up to --queue-wait)
    until the queue is empty, then moves everything stored. Pending is what no run is moving; orders a
    scheduled sync is moving at that moment are counted apart (being_moved).
    """
    chosen = get_target(target, stage=stage)
    started = False
    try:
        with err_console.status("waiting for queued orders to be stored...") as status:
            queued = _wait_for_queue(OpsClient(chosen), queue_wait)
            status.update("syncing...")
            started = True
            result = chosen.invoke("sync", {"source": "txpipe.sync-now", "detail-type": "Manual Sync"})
    except KeyboardInterrupt:
        # Ctrl-C stops the waiting, not the sync: the function runs on (locally in the runtime, on AWS in Lambda).
        interrupted(_interrupted_sync(target, stage) if started else
                    "no sync was started; the scheduled sync moves what is stored")
    moved = {"synced": result["synced"], "inserted": result.get("inserted", result["synced"]),
             "already_present": result.get("already_present", 0), "pending": result["pending"],
             # outbox rows another run (the schedule's, or a second sync-now) had claimed and not yet committed
             "being_moved": result.get("being_moved", 0),
             "still_queued": queued, "seconds": result["seconds"],
             # batches the warehouse loaded from a stage outside it (Redshift: S3 and COPY)
             "staged_batches": result.get("staged_batches", 0)}
    if as_json:
        print_json(moved)
    else:
        present = (f", {moved['already_present']} were already in the warehouse (an earlier run stopped after "
                   "loading them)") if moved["already_present"] else ""
        queue = (f"; {plural(queued, 'message')} still on the queue after {queue_wait:g} s (txpipe status says why)"
                 if queued else "")
        # Another run may hold orders this one skipped: they are on their way, not pending.
        others = (f"; a scheduled sync (or another sync-now) is moving {moved['being_moved']} orders right now, "
                  "not counted as pending") if moved["being_moved"] else ""
        console.print(f"synced {moved['synced']} orders in {moved['seconds']:.2f} s: {moved['inserted']} new to the "
                      f"warehouse{present}; {moved['pending']} pending{others}{queue}")


def _interrupted_sync(target: str, stage: str) -> str:
    if target == "local":
        return "the sync continues in the runtime; `txpipe status` shows when it ends"
    return f"the sync continues in its Lambda function; `txpipe status --target aws --stage {stage}` shows when it ends"


def _wait_for_queue(ops: OpsClient, seconds: float) -> int:
    """Waits until the orders queue is empty or `seconds` pass; returns the messages still on it."""
    deadline = time.monotonic() + seconds
    while True:
        waiting = ops.queue_depth().waiting
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.2)


@handle_errors
def refresh_views(target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False) -> None:
    """Refresh the reporting materialized views now (they also refresh daily, at deploy's --refresh-at)."""
    result = get_target(target, stage=stage).invoke("refresh", {"source": "txpipe.refresh-views"})
    if as_json:
        print_json(result)
    else:
        console.print(f"refreshed {', '.join(result['refreshed'])}")


@handle_errors
def sla_report(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    sla: Annotated[float | None, typer.Option("--sla", help="SLA in seconds, positive (default: the deployed one).")
                   ] = None,
    since: Annotated[str, typer.Option(help="Orders accepted within this window, e.g. 1h, 7d, or all (the whole "
                                            "history; slower on a large one). Pending ones count whenever "
                                            "accepted.")] = "24h",
    include_history: Annotated[bool, typer.Option(
        "--include-history", help="Count the orders loaded by `seed --history` too: they are old by design, so "
                                  "they show as late.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-order lag from API accept to warehouse load: synced, pending, percentiles, breaches.

    Counts live orders: those loaded by `txpipe seed --history` (order_ids hist-<seed>-<n>) are old by design,
    so they are left out and only counted (--include-history counts them). Exits 3 if any order counted was
    synced later than the SLA or has been pending longer than it.
    """
    if sla is not None and not sla > 0:
        raise OptionError(f"--sla {sla:g} must be a positive number of seconds")
    chosen = get_target(target, stage=stage)
    sla_seconds = sla if sla is not None else _deployed_sla(chosen)
    since_seconds = None if since.strip().lower() == "all" else config.parse_duration(since)
    report = OpsClient(chosen).sla_report(sla_seconds=sla_seconds, since_seconds=since_seconds,
                                          include_history=include_history)
    if as_json:
        print_json(report.to_dict())
    else:
        _render_sla(report, target, since if since_seconds is not None else None)
    if report.breaches:
        err_console.print(f"SLA breached by {plural(report.breaches, 'order')}", highlight=False)
        raise typer.Exit(int(ExitStatus.SLA_BREACH))


def _render_sla(report: SlaReport, target: str, since: str | None) -> None:
    """The report as a table, then what it left out (orders of seed --history)."""
    window = ", all orders" if since is None else f", orders of the last {since}"
    table = folding_table("measure", "value", title=f"SLA report (SLA {duration(report.sla_seconds)}{window})")
    oldest = duration(report.oldest_pending_seconds) if report.pending else "none pending"
    last_sync = moment(report.last_sync_at) if report.last_sync_at else "never"
    for label, value in [
        ("orders in OLTP", report.oltp_orders), ("orders in warehouse", report.warehouse_orders),
        ("synced", report.synced), ("pending", report.pending), ("oldest pending", oldest),
        *[(f"lag {k}", "-" if v is None else duration(v)) for k, v in report.lag_seconds.to_dict().items()],
        ("breaches", f"[red]{report.breaches}[/]" if report.breaches else "[green]0[/]"),
        (last_sync_label(target), last_sync),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    line = history_line(report.history)
    if line:
        console.print(line, highlight=False, soft_wrap=True)


def history_line(history: SlaHistory | None) -> str | None:
    """What the report says of the orders loaded by seed --history (None: there are none in it)."""
    if not history or not history.orders:
        return None
    orders = plural(history.orders, "historical order")
    pending = f", {history.pending} of them pending the sync" if history.pending else ""
    verb = "is" if history.orders == 1 else "are"
    if history.counted:
        return f"{orders} loaded by seed --history {verb} counted{pending} (old by design, so late)"
    return f"{orders} loaded by seed --history {verb} not counted{pending} (--include-history counts them)"


def last_sync_label(target: str) -> str:
    """What the warehouse's last recorded sync run is, said truly for the target. A warehouse that bills by wake
    (Redshift) is not touched by a sync with nothing to move, so it records only the runs that moved orders
    (lambdas.core.sync); PostgreSQL records every run."""
    # imported here, as every command's libraries: see app.py
    from lambdas.core.warehouse import DEFAULT_KIND, warehouse_class

    # The kind of warehouse each target deploys (the stack sets TXPIPE_WAREHOUSE_KIND=redshift; the local runtime,
    # the default kind), and what it can do as its class declares it (lambdas.core.warehouse's registry).
    kind = {"aws": "redshift"}.get(target, DEFAULT_KIND)
    return "last sync that moved orders" if warehouse_class(kind).capabilities.bills_by_wake else "last sync"


def _deployed_sla(target: Target) -> float:
    return float(target.deployed_settings().get("sla_seconds", config.DEFAULT_SLA_SECONDS))

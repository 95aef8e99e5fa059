"""txpipe dlq ... and txpipe rejected ...: what did not make it into the OLTP database, and why.

Both targets answer through the ops function (on AWS it reaches the queues and the private
database from inside the VPC), so the commands are the same everywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from lambdas.core.contract import Purged
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError, TxpipeError
from txpipe_cli.humanize import duration, plural
from txpipe_cli.ops_client import OpsClient
from txpipe_cli.output import console, err_console, folding_table, handle_errors, print_json
from txpipe_cli.targets import get_target

dlq_app = typer.Typer(help="The dead-letter queue: messages the store could never store, with their reasons.",
                      no_args_is_help=True)
rejected_app = typer.Typer(help="Orders kept aside by the store: an unknown customer (resolved once the order is "
                                "stored after all), or an order_id re-sent with other content.", no_args_is_help=True)


def _ops(target: str, stage: str) -> OpsClient:
    return OpsClient(get_target(target, stage=stage))


@dlq_app.command("list")
@handle_errors
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many messages.")] = 50,
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """How many dead letters wait, why, and how old each is (oldest first)."""
    result = _ops(target, stage).dlq_list(limit)
    if as_json:
        print_json(result.to_dict())
        return
    if not result.count:
        console.print("The dead-letter queue is empty.")
        return
    table = folding_table("message id", "age", "receives", "bytes", "reason",
                  title=plural(result.count, "dead letter") + (f", {result.listed} shown"
                                                              if result.listed < result.count else ""))
    for message in result.messages:
        table.add_row(message.message_id, duration(message.age_seconds), str(message.receive_count),
                      str(message.bytes), message.reason)
    console.print(table)
    console.print("txpipe dlq show ID prints one; txpipe dlq redrive puts them all back on the queue.")


@dlq_app.command("show")
@handle_errors
def dlq_show(
    message_id: Annotated[str, typer.Argument(help="A message id from `txpipe dlq list`.")],
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """One dead letter: its reason, its times and its whole body."""
    letter = _ops(target, stage).dlq_show(message_id)
    if as_json:
        print_json(letter.to_dict())
        return
    for key in ("message_id", "reason", "sent_at", "dead_lettered_at", "receive_count", "bytes"):
        console.print(f"[bold]{key}[/]: {getattr(letter, key)}", highlight=False)
    console.print("[bold]body[/]:", highlight=False)
    typer.echo(letter.body)


@dlq_app.command("redrive")
@handle_errors
def dlq_redrive(target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False) -> None:
    """Move every dead letter back to the orders queue (AWS: an SQS message move task).

    Do it once the cause is fixed: a message that still cannot be stored comes straight back, and
    orders already stored are never stored twice.
    """
    result = _ops(target, stage).dlq_redrive()
    if as_json:
        print_json(result.to_dict())
    elif result.status == "COMPLETED":
        console.print(f"moved {plural(result.moved, 'message')} back to the orders queue")
    else:
        console.print(f"moving about {plural(result.moved, 'message')} back to the orders queue "
                      f"(SQS move task {result.task_handle or ''}); txpipe dlq list shows what is left")


@dlq_app.command("purge")
@handle_errors
def dlq_purge(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """Delete every dead letter for good (look at them first with `txpipe dlq list`).

    An empty queue has nothing to purge: it says so and exits 0 without asking."""
    ops = _ops(target, stage)
    if not yes:
        listed = ops.dlq_list(1)
        waiting = max(listed.count, listed.listed)  # SQS's count is approximate; a message seen is there
        if waiting:
            typer.confirm(f"Delete the {plural(waiting, 'message')} in the dead-letter queue for good?", abort=True)
        result = ops.dlq_purge() if waiting else Purged(purged=0)
    else:
        result = ops.dlq_purge()
    if as_json:
        print_json(result.to_dict())
    elif not result.purged:
        console.print("the dead-letter queue is empty: nothing to purge")
    else:
        console.print(f"purged {plural(result.purged, 'dead letter')}")


@rejected_app.command("list")
@handle_errors
def rejected_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many (oldest first).")] = 50,
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List the resolved ones too (stored since).")] = False,
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """How many rejected orders are pending, for which reasons, and the oldest of them.

    One is resolved, and leaves the list and the counts, once an order is stored under its order_id after it
    was rejected (an unknown customer loaded and the exported file re-sent); `txpipe rejected purge
    --resolved` deletes those. A conflict (an order_id re-sent with other content) stays until you act on it.
    """
    result = _ops(target, stage).rejected(limit=limit, reason=reason, all=show_all)
    if as_json:
        print_json(result.to_dict())
        return
    resolved = result.resolved or 0  # an earlier release's ops function does not count them
    if not result.count and not (show_all and result.rows):
        console.print("No rejected orders pending." + (f" {_resolved_line(resolved)}" if resolved else ""),
                      highlight=False, soft_wrap=True)
        return
    for name, count in result.reasons.items():
        console.print(f"{count} x {name}", highlight=False)
    table = folding_table("order_id", "rejected at", "reason", "order", *(["resolved"] if show_all else []),
                  title=f"{plural(result.count, 'rejected order')} pending" + (f", {resolved} resolved" if show_all
                                                                        else ""))
    for row in result.rows:
        table.add_row(row.order_id or "-", _when(row.rejected_at), row.reason, _order(row.order),
                      *([f"stored {row.stored_at}" if row.resolved else "pending"] if show_all else []))
    console.print(table)
    if resolved:
        console.print(_resolved_line(resolved), highlight=False, soft_wrap=True)
    if result.count:
        console.print("txpipe rejected export FILE writes the pending ones as orders to fix and re-send.")


EXPORT_PAGE = 1000  # rows per ops call (its own limit: lambdas.core.rejections.PAGE_LIMIT)


def _when(iso: str) -> str:
    """`2026-12-02 21:25:30` from an ISO instant (UTC): what a person reads in a narrow column."""
    return iso.replace("T", " ")[:19]


def _order(order: Any) -> str:
    """`customer 12: 3 x cheese at 16.99`; anything not an order as compact JSON (`rejected show` has it all)."""
    try:
        return f"customer {order['customer_id']}: {order['qty']} x {order['type']} at {order['retail_price']}"
    except (KeyError, TypeError):
        return json.dumps(order, separators=(",", ":"))


def _resolved_line(resolved: int) -> str:
    return f"{resolved} resolved (stored since; --all lists them): txpipe rejected purge --resolved deletes them."


@rejected_app.command("purge")
@handle_errors
def rejected_purge(
    resolved: Annotated[bool, typer.Option("--resolved", help="Delete the resolved ones: each stored since it was "
                                                             "rejected (required: nothing else can be purged).")
                        ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """Delete the rejected orders that were resolved (an order stored under their order_id since), for good.

    The pending ones stay: `txpipe rejected list` shows both (--all)."""
    if not resolved:
        raise OptionError("purge deletes only the resolved rejected orders: give --resolved",
                          hint="txpipe rejected list --all shows which are resolved")
    ops = _ops(target, stage)
    if not yes:
        count = ops.rejected(limit=1).resolved or 0  # None: an earlier release's function, which has no purge
        if count:
            typer.confirm(f"Delete the {plural(count, 'resolved rejected order')} for good?", abort=True)
    result = ops.rejected_purge()
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(f"purged {plural(result.purged, 'resolved rejected order')}")


@rejected_app.command("export")
@handle_errors
def rejected_export(
    output: Annotated[Path, typer.Argument(help="NDJSON file to write (replaced atomically).")],
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    with_reasons: Annotated[bool, typer.Option(
        "--with-reasons", help="Add reason and rejected_at to each line (then it is no longer sendable).")] = False,
    target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False,
) -> None:
    """Write every pending rejected order as one JSON order per line, with its order_id, ready for
    `txpipe send FILE` once the cause is fixed (e.g. the customer loaded with `txpipe seed`); the ones
    resolved since are left out."""
    ops = _ops(target, stage)
    written, after = 0, 0
    if not output.parent.is_dir():
        raise TxpipeError(f"cannot write {output}: {output.parent} is not a directory",
                          hint=f"run: mkdir -p {output.parent}")
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(fd, "w") as handle, err_console.status("exporting rejected orders...") as spinner:
            while True:
                page = ops.rejected(after_id=after, limit=EXPORT_PAGE, reason=reason)
                for row in page.rows:
                    line = {**row.order, **({"reason": row.reason, "rejected_at": row.rejected_at}
                                            if with_reasons else {})}
                    handle.write(json.dumps(line, separators=(",", ":")) + "\n")
                written += len(page.rows)
                spinner.update(f"exporting rejected orders... {written}")
                if len(page.rows) < EXPORT_PAGE:
                    break
                after = page.rows[-1].id
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if as_json:
        print_json({"written": written, "file": str(output)})
    else:
        console.print(f"wrote {plural(written, 'rejected order')} to {output}")

"""send, seed, sample: putting customers and orders into the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from txpipe_cli import sender, synthetic
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import TxpipeError
from txpipe_cli.output import console, err_console, fail, handle_errors, print_json
from txpipe_cli.targets import get_target

CUSTOMER_CHUNK = 5000


def _progress(disabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err_console, disable=disabled, transient=True)


@handle_errors
def send(
    file: Annotated[Path, typer.Argument(help="Orders: a JSON object, a JSON array, or NDJSON.")],
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    rate: Annotated[float | None, typer.Option(min=0.1, help="Pace to about this many orders per second.")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Replay the file this many times (each pass its own ids).")] = 1,
    batch: Annotated[int, typer.Option(min=1, max=500, help="Orders per API request.")] = 500,
    url: Annotated[str | None, typer.Option(envvar="TXPIPE_API_URL",
                                            help="Orders API base URL (default: the target's).")] = None,
    fresh_ids: Annotated[bool, typer.Option(
        "--fresh-ids", help="Give orders without an order_id random ids: a re-run then stores them all again, "
                            "so it is NOT safe to re-run.")] = False,
    rejects: Annotated[Path | None, typer.Option(
        help="Write the refused orders here as NDJSON (with their order_id), to fix and send.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay orders from FILE through the HTTP API, with a progress bar; safe to re-run.

    An order without an order_id gets one made of FILE's sha256, the --repeat pass and its position
    in FILE, so the same command run again sends the same ids and the API stores each order once
    (editing FILE changes the ids). Each order is checked with the API's own rules first; invalid
    ones are refused by line or index and never hold back the valid ones.

    Exits 0 when every order was accepted, 1 when any was refused or the API failed, 130 on Ctrl-C;
    the counts are printed in every case.
    """
    orders = sender.read_orders(file)
    if not orders.items:
        raise TxpipeError(f"{file} holds no orders")
    if rate:
        batch = max(1, min(batch, int(rate // 5)))  # about five requests a second keeps the pace smooth
    chosen = get_target(target, stage=stage)
    client = sender.ApiClient(url or chosen.api_url, headers=chosen.api_headers())
    with _progress(as_json) as progress:
        task = progress.add_task("sending", total=len(orders.items) * repeat)
        try:
            result = sender.send(client, orders, batch_size=batch, repeat=repeat, rate=rate, fresh_ids=fresh_ids,
                                 progress=lambda n: progress.advance(task, n))
        finally:
            client.close()
    if rejects and result.refusals:
        sender.write_rejects(rejects, result.refusals)
    _report_send(result, as_json, rejects, fresh_ids)


def _report_send(result: sender.SendResult, as_json: bool, rejects: Path | None, fresh_ids: bool) -> None:
    """Prints the counts (and up to 10 refusals), then exits 1 or 130 if not every order was accepted."""
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(f"{result.orders} orders: accepted {result.accepted}, refused {result.refused}, "
                      f"not sent {result.not_sent}", highlight=False, soft_wrap=True)
        for refusal in result.refusals[:10]:
            where = f"{refusal.position_kind} {refusal.position}"
            if refusal.pass_number > 1:
                where += f" (pass {refusal.pass_number})"
            reasons = "; ".join(f"field {e['field']}: {e['reason']}" if e["field"] else str(e["reason"])
                                for e in refusal.errors)
            err_console.print(f"refused {where}: {reasons}", highlight=False, soft_wrap=True)
        if result.refused > 10:
            err_console.print(f"... and {result.refused - 10} more refused", highlight=False)
        if result.interrupted:
            err_console.print(
                "Re-running with --fresh-ids would store the accepted orders again." if fresh_ids else
                "Re-running the same command is safe: it posts every order again with the same order_id, "
                "and the API stores each order_id once.", highlight=False, soft_wrap=True)
    if result.interrupted:
        fail(f"{result.interrupted}; {result.not_sent} orders not sent", 130 if result.cancelled else 1)
    if result.refused:
        fix = f"fix them in {rejects} and send that file" if rejects else "--rejects FILE writes them out to fix"
        fail(f"{result.refused} of {result.orders} orders refused and not stored ({fix})")


@handle_errors
def seed(
    customers: Annotated[Path | None, typer.Option("--customers", help="CSV with customer_id,state[,name].")] = None,
    generate: Annotated[int | None, typer.Option(min=1, help="Generate N customers weighted by population.")] = None,
    random_seed: Annotated[int, typer.Option(help="Seed for --generate (same seed, same customers).")] = 42,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Load customers (id -> state) into the OLTP database; re-running updates them in place."""
    if (customers is None) == (generate is None):
        raise TxpipeError("give exactly one of --customers FILE or --generate N")
    if customers:
        rows = synthetic.read_customers(customers)
    else:
        rows = synthetic.generate_customers(generate or 0, random_seed)
    chosen = get_target(target, stage=stage)
    loaded = 0
    with _progress(as_json) as progress:
        task = progress.add_task("loading customers", total=len(rows))
        for start in range(0, len(rows), CUSTOMER_CHUNK):
            chunk = rows[start:start + CUSTOMER_CHUNK]
            loaded += chosen.invoke("ops", {"action": "load_customers", "rows": chunk})["loaded"]
            progress.advance(task, len(chunk))
    if as_json:
        print_json({"customers": loaded})
    else:
        console.print(f"loaded {loaded} customers")


@handle_errors
def sample(
    orders: Annotated[int, typer.Option(min=1, help="How many orders.")] = 1000,
    customers: Annotated[int, typer.Option(min=1, help="Draw customer ids from 1..N (match seed --generate).")] = 5000,
    random_seed: Annotated[int, typer.Option(help="Seed (same seed, same orders).")] = 7,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Generate realistic sample orders as a JSON array, ready for `txpipe send`."""
    text = json.dumps(synthetic.generate_orders(orders, customers, random_seed), indent=1)
    if output:
        output.write_text(text + "\n")
        err_console.print(f"wrote {orders} orders to {output}")
    else:
        typer.echo(text)

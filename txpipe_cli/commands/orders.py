"""send, seed, sample: putting customers and orders into the pipeline."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from txpipe_cli import sender, synthetic
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError, TxpipeError
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
    url: Annotated[str | None, typer.Option(
        envvar="TXPIPE_API_URL",
        help="The orders URL as `txpipe endpoint` prints it (or its base); default: the target's.")] = None,
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
    replace: Annotated[bool, typer.Option("--replace", help="Let the load move existing customers to another "
                                                            "state (their past orders move with them).")] = False,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Load customers (id -> state) into the OLTP database, all or nothing, in bounded batches.

    Re-running updates names in place; a load that would move an existing customer to another state is
    refused (nothing changes) unless --replace is given.
    """
    if (customers is None) == (generate is None):
        raise OptionError("give exactly one of --customers FILE or --generate N")
    rows = synthetic.iter_csv_customers(customers) if customers else synthetic.iter_customers(generate or 0,
                                                                                               random_seed)
    chosen = get_target(target, stage=stage)
    load_id = f"seed-{uuid.uuid4().hex}"
    staged = 0
    with _progress(as_json) as progress:
        task = progress.add_task("loading customers", total=generate)
        try:
            for chunk in _chunks(rows, CUSTOMER_CHUNK):
                staged += chosen.invoke("ops", {"action": "customers_stage", "load_id": load_id, "rows": chunk,
                                                "first": staged == 0})["staged"]
                progress.advance(task, len(chunk))
            result = chosen.invoke("ops", {"action": "customers_commit", "load_id": load_id, "replace": replace})
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: an abandoned load is cleared by the next anyway
                chosen.invoke("ops", {"action": "customers_abort", "load_id": load_id})
            raise
    if as_json:
        print_json({"customers": result["loaded"], "new": result["new"], "updated": result["updated"]})
    else:
        console.print(f"loaded {result['loaded']} customers ({result['new']} new, {result['updated']} updated)")


def _chunks(rows: Iterator[list[Any]], size: int) -> Iterator[list[list[Any]]]:
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@handle_errors
def sample(
    orders: Annotated[int, typer.Option(min=1, help="How many orders.")] = 1000,
    customers: Annotated[int, typer.Option(min=1, help="Draw customer ids from 1..N (match seed --generate).")] = 5000,
    random_seed: Annotated[int, typer.Option(help="Seed (same seed, same orders).")] = 7,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate realistic sample orders as a JSON array, ready for `txpipe send` (on stdout, or to a file;
    with --json and a file, a JSON summary of what was written)."""
    text = json.dumps(synthetic.generate_orders(orders, customers, random_seed), indent=1)
    if not output:
        typer.echo(text)
        return
    output.write_text(text + "\n")
    if as_json:
        print_json({"orders": orders, "file": str(output)})
    else:
        err_console.print(f"wrote {orders} orders to {output}")

"""send, seed, sample: putting customers and orders into the pipeline."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lambdas.core.reasons import one_line
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError, TxpipeError, aws_error
from txpipe_cli.humanize import duration, plural
from txpipe_cli.ops_client import OpsClient
from txpipe_cli.output import console, err_console, fail, handle_errors, print_json
from txpipe_cli.targets import Target, get_target

if TYPE_CHECKING:  # imported where used: `txpipe --help` and the other commands start without them
    from rich.progress import Progress

    from lambdas.core.contract import CustomersCommitted, HistoryLoaded
    from txpipe_cli import sender

CUSTOMER_CHUNK = 5000
HISTORY_CHUNK = 200_000  # orders per ops call: one transaction of a few seconds, far inside a Lambda's limit
# Chunks loaded at once: while one chunk's rows are generated the other's are inserted, and the database
# inserts two at once (measured on 2 cores: 38,900 rows/s one at a time, 50,700 two at a time).
HISTORY_PARALLEL = 2
# Each chunk is one transaction and a re-run skips the orders already there, so a load that stopped continues.
CONTINUE_HINT = ("the orders loaded so far stay; run the same command again to load the rest: it leaves those "
                 "already loaded as they are")


def _progress(disabled: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
        help="Write the refused orders here as NDJSON (with their order_id; a line that is not JSON as it "
             "was), to fix and send.")] = None,
    id_scope: Annotated[str | None, typer.Option(
        "--id-scope", show_default=False,
        help="What tells this file's orders from another file's identical ones [default: FILE's name without "
             "its extension]; give the old name after renaming FILE to keep its ids.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay orders from FILE through the HTTP API, with a progress bar; safe to re-run.

    An order without an order_id gets one made of its own content, FILE's name (--id-scope), the
    --repeat pass and which of the identical orders in FILE it is: run again, after appending, editing
    other orders, re-formatting or turning a JSON array into NDJSON, the orders already sent keep their
    ids and the API stores each once. Each order is checked with the API's own rules first; invalid
    ones are refused by line or index and never hold back the valid ones. In NDJSON a line that is not
    JSON is refused the same way, by its line (--rejects writes it as it was); a file that is one
    broken JSON document is refused whole.

    Exits 0 when every order was accepted, 1 when any was refused or the API failed, 130 on Ctrl-C;
    the counts are printed in every case.
    """
    from txpipe_cli import sender

    orders = dataclasses.replace(sender.read_orders(file), id_scope=file.stem if id_scope is None else id_scope)
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
        console.print(f"{plural(result.orders, 'order')}: accepted {result.accepted}, refused {result.refused}, "
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
        fail(f"{result.interrupted}; {plural(result.not_sent, 'order')} not sent", 130 if result.cancelled else 1)
    if result.refused:
        fix = f"fix them in {rejects} and send that file" if rejects else "--rejects FILE writes them out to fix"
        fail(f"{result.refused} of {plural(result.orders, 'order')} refused and not stored ({fix})")


@handle_errors
def seed(
    customers: Annotated[Path | None, typer.Option("--customers", help="CSV with customer_id,state[,name].")] = None,
    generate: Annotated[int | None, typer.Option(min=1, help="Generate N customers weighted by population.")] = None,
    history: Annotated[int | None, typer.Option(
        "--history", min=1, help="Load N historical orders of the customers already seeded, straight into OLTP "
                                 "and its outbox (then txpipe sync-now moves them). Safe to re-run: an order "
                                 "already loaded is left as it is, so after a failure the same command "
                                 "continues.")] = None,
    days: Annotated[int, typer.Option(min=1, help="--history spreads the orders over this many days up to now."
                                      )] = 365,
    random_seed: Annotated[int, typer.Option(help="Seed for --generate and --history (same seed, same customers "
                                                  "or orders).")] = 42,
    replace: Annotated[bool, typer.Option("--replace", help="Let the load move existing customers to another "
                                                            "state. Their orders already in the warehouse stay "
                                                            "reported in the old state; orders not yet synced and "
                                                            "all later ones go to the new state.")] = False,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Load customers (id -> state) into the OLTP database, all or nothing, in bounded batches; or, with
    --history N, N historical orders of those customers.

    Re-running updates names in place; a load that would move an existing customer to another state is
    refused (nothing changes) unless --replace is given. Moving a customer rewrites no history: the
    warehouse records each order's state when the sync loads it (normally minutes after the order), and
    the reports group by that state. So a moved customer's orders already synced stay reported in the
    state where they were placed; the orders still waiting for the sync, and every later one, are
    reported in the new state.

    --history N loads orders hist-<seed>-<index> in chunks of 200,000, each in one transaction, into the
    orders table and the outbox, the way the store function writes them: the sync then moves them to the
    warehouse as any other order. Types, sizes and quantities follow a menu's skew; accepted_at is spread over
    the --days days before the start of the load, rising with the index as live orders do. If a load stops,
    the chunks already loaded stay: run the same command again, and it loads only what is missing. The
    orders reach the warehouse long after their accepted_at, by design: sla-report leaves them out (it
    knows them by their order_ids) and says how many; sla-report --include-history counts them, as late.
    """
    if sum(option is not None for option in (customers, generate, history)) != 1:
        raise OptionError("give exactly one of --customers FILE, --generate N or --history N")
    chosen = get_target(target, stage=stage)
    if history is not None:
        _seed_history(chosen, history, days, random_seed, as_json)
        return
    from txpipe_cli import synthetic

    rows = synthetic.iter_csv_customers(customers) if customers else synthetic.iter_customers(generate or 0,
                                                                                               random_seed)
    load_id = f"seed-{uuid.uuid4().hex}"
    staged, ops = 0, OpsClient(chosen)
    with _progress(as_json) as progress:
        task = progress.add_task("loading customers", total=generate)
        try:
            for chunk in _chunks(rows, CUSTOMER_CHUNK):
                staged += ops.customers_stage(load_id, chunk, first=staged == 0).staged
                progress.advance(task, len(chunk))
            result = ops.customers_commit(load_id, replace=replace)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: an abandoned load is cleared by the next anyway
                ops.customers_abort(load_id)
            raise
    if as_json:
        print_json({"customers": result.loaded, "new": result.new, "updated": result.updated,
                    "moved": result.moved or 0})
        return
    console.print(_customers_line(result), highlight=False)
    if result.moved:
        console.print(f"{result.moved} moved to another state: their orders already in the warehouse stay "
                      "reported in the old state; orders not yet synced and all later ones go to the new one",
                      highlight=False, soft_wrap=True)


def _customers_line(result: CustomersCommitted) -> str:
    """What a customer load changed: new, updated (state or name), and the rest already as given."""
    loaded, new, updated = int(result.loaded), int(result.new), int(result.updated)
    same = loaded - new - updated
    if not new and not updated:
        return f"nothing changed: {plural(loaded, 'customer')} already as given"
    parts = [f"{count} {what}" for count, what in ((new, "new"), (updated, "updated"), (same, "already as given"))
             if count]
    return f"loaded {plural(loaded, 'customer')}: {', '.join(parts)}"


def _seed_history(chosen: Target, orders: int, days: int, random_seed: int, as_json: bool) -> None:
    """Loads the orders a chunk per ops call, HISTORY_PARALLEL at a time, and prints what changed."""
    # One end for the whole load, so every chunk spreads its orders over the same days.
    end = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
    started = time.monotonic()
    totals = {"inserted": 0, "already_present": 0}
    with _progress(as_json) as progress:
        task = progress.add_task("loading orders", total=orders)

        def loaded(result: HistoryLoaded) -> None:
            totals["inserted"] += int(result.inserted)
            totals["already_present"] += int(result.already_present)
            progress.advance(task, int(result.inserted) + int(result.already_present))

        try:
            load = {"seed": random_seed, "total": orders, "days": days, "end": end}
            _load_history_chunks(OpsClient(chosen), orders, load, loaded)
        except KeyboardInterrupt:
            fail(f"interrupted after {_done(totals)} of {orders} orders ({CONTINUE_HINT})", 130)
        except Exception as exc:
            if not _done(totals):
                raise  # nothing loaded: the reason alone says what to do (e.g. seed customers first)
            raise TxpipeError(f"loading orders stopped after {_done(totals)} of {orders}: {_reason(exc)}",
                              hint=CONTINUE_HINT) from None
    result = {"orders": orders, **totals, "days": days, "seconds": round(time.monotonic() - started, 1)}
    if as_json:
        print_json(result)
        return
    spread = f"{plural(orders, 'order')} over {plural(days, 'day')}"
    took = duration(result["seconds"])
    if not result["inserted"]:
        were = "was" if orders == 1 else "were"
        console.print(f"nothing changed: the {spread} {were} already there (checked in {took})", highlight=False)
        return
    present = f", {result['already_present']} already there" if result["already_present"] else ""
    console.print(f"loaded {spread} in {took}: {result['inserted']} new{present}", highlight=False)
    console.print("They wait in OLTP's outbox for the warehouse (run: txpipe sync-now; the scheduled sync "
                  "moves them too)", highlight=False, soft_wrap=True)


def _load_history_chunks(ops: OpsClient, orders: int, load: dict[str, Any], loaded: Any) -> None:
    """Invokes history_load per chunk, at most HISTORY_PARALLEL in flight; calls loaded(result) as each ends.
    On the first failure no further chunk starts, the ones in flight end (each is one transaction), and it
    raises."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    starts = iter(range(0, orders, HISTORY_CHUNK))
    with ThreadPoolExecutor(HISTORY_PARALLEL, thread_name_prefix="txpipe-history") as pool:
        running: set[Future[Any]] = set()

        def submit_next() -> None:
            start = next(starts, None)
            if start is not None:
                running.add(pool.submit(ops.history_load, **load, start=start,
                                        count=min(HISTORY_CHUNK, orders - start)))

        for _ in range(HISTORY_PARALLEL):
            submit_next()
        failure: BaseException | None = None
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.discard(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                    continue
                loaded(future.result())
                if failure is None:
                    submit_next()
        if failure is not None:
            raise failure


def _done(totals: dict[str, int]) -> int:
    return totals["inserted"] + totals["already_present"]


def _reason(exc: Exception) -> str:
    if isinstance(exc, TxpipeError):
        return exc.reason
    known = aws_error(exc)
    return known.reason if known else one_line(exc)


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
    from txpipe_cli import synthetic

    text = json.dumps(synthetic.generate_orders(orders, customers, random_seed), indent=1)
    if not output:
        typer.echo(text)
        return
    output.write_text(text + "\n")
    if as_json:
        print_json({"orders": orders, "file": str(output)})
    else:
        err_console.print(f"wrote {orders} orders to {output}")

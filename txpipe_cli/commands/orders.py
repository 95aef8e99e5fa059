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
    repeat: Annotated[int, typer.Option(min=1, help="Replay the file this many times (fresh order ids).")] = 1,
    batch: Annotated[int, typer.Option(min=1, max=500, help="Orders per API request.")] = 500,
    url: Annotated[str | None, typer.Option(envvar="TXPIPE_API_URL",
                                            help="Orders API base URL (default: the target's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay orders from FILE through the HTTP API, with a progress bar.

    Exits 1 if the API refused any request, printing its reasons.
    """
    items = sender.read_orders(file)
    if not items:
        raise TxpipeError(f"{file} holds no orders")
    if rate:
        batch = max(1, min(batch, int(rate // 5)))  # about five requests a second keeps the pace smooth
    chosen = get_target(target, stage=stage)
    client = sender.ApiClient(url or chosen.api_url, headers=chosen.api_headers())
    with _progress(as_json) as progress:
        task = progress.add_task("sending", total=len(items) * repeat)
        try:
            result = sender.send(client, items, batch_size=batch, repeat=repeat, rate=rate,
                                 progress=lambda n: progress.advance(task, n))
        finally:
            client.close()
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(f"sent {result.sent}, accepted {result.accepted}, rejected {result.rejected}")
    if result.errors:
        for refused in result.errors[:5]:
            for item in refused["errors"][:10]:
                err_console.print(f"request {refused['request']} ({refused['status']}): index {item.get('index')} "
                                  f"field {item.get('field')}: {item.get('reason')}", highlight=False)
        fail(f"the API refused {len(result.errors)} request(s) ({result.rejected} orders); "
             "nothing of those was stored")


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

"""The txpipe command line: the root app only composes the command modules."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from txpipe_cli.commands import dashboard, dlq, doctor, logs, orders, package, pipeline, report, warehouse

# Typer 0.29 shows a type after every option, flags included ("--json <bool>"), as if a flag took a value.
# A flag shows none, as Click and the operator expect.
_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = (  # type: ignore[method-assign]
    lambda self, ctx: None if self.is_flag else _display_type(self, ctx))

app = typer.Typer(
    name="txpipe",
    help="Operate the pizza-order pipeline: HTTP API -> queue -> PostgreSQL -> warehouse, within a 15-minute SLA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could print connection secrets
    add_completion=False,
)

def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"txpipe {metadata.version('txpipe')}")
        raise typer.Exit()


@app.callback()
def root(
    home: Annotated[Path | None, typer.Option(
        "--home", envvar="TXPIPE_HOME", show_default=False,
        help="Where txpipe keeps its state (deployments, secrets, logs). Default: $XDG_STATE_HOME/txpipe, "
             "else ~/.local/state/txpipe; the TXPIPE_HOME environment variable sets it too.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print txpipe's version and exit.")] = False,
) -> None:
    """Operate the pizza-order pipeline: HTTP API -> queue -> PostgreSQL -> warehouse, within a 15-minute SLA."""
    if home is not None:
        os.environ["TXPIPE_HOME"] = str(home.expanduser().absolute())  # every command resolves it from here


app.command()(doctor.doctor)
app.command()(pipeline.deploy)
app.command()(orders.send)
app.command("sync-now")(warehouse.sync_now)
app.command("sla-report")(warehouse.sla_report)
app.command()(pipeline.status)
app.command()(logs.logs)
app.command()(report.report)
app.command()(dashboard.dashboard)
app.command("refresh-views")(warehouse.refresh_views)
app.command()(orders.seed)
app.command()(orders.sample)
app.command()(pipeline.endpoint)
app.command()(package.package)
app.command()(pipeline.destroy)
app.add_typer(dlq.dlq_app, name="dlq")
app.add_typer(dlq.rejected_app, name="rejected")


def main() -> None:
    app()

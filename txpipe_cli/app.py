"""The txpipe command line: the root app only composes the command modules."""

from __future__ import annotations

import typer

from txpipe_cli.commands import dlq, doctor, orders, package, pipeline, report, warehouse

app = typer.Typer(
    name="txpipe",
    help="Operate the pizza-order pipeline: HTTP API -> queue -> PostgreSQL -> warehouse, within a 15-minute SLA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could print connection secrets
    add_completion=False,
)

app.command()(doctor.doctor)
app.command()(pipeline.deploy)
app.command()(orders.send)
app.command("sync-now")(warehouse.sync_now)
app.command("sla-report")(warehouse.sla_report)
app.command()(pipeline.status)
app.command()(report.report)
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

"""The txpipe command line: the root app only composes the command modules.

Every command starts fast: importing this module (what `txpipe --help` and `--version` do, and every
command before it runs) loads the command modules and what their options need, never a command's body's
libraries (uvicorn, boto3, psycopg2, pydantic, redshift_connector, the dashboard, the AWS target): each
command module imports those inside the function that uses them. tests/unit/test_startup_imports.py holds
that line; `python -m benchmarks --only startup` times each command's start.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from txpipe_cli.commands import dashboard, dlq, doctor, logs, orders, package, pipeline, report, warehouse
from txpipe_cli.output import one_line_usage_errors

# The two patches below reach into Typer's internals (TyperOption.display_type_rich, typer._coercion), so Typer is
# pinned to the version they were written against (pyproject.toml, typer==0.29.2; tests/unit/test_typer_pin.py
# fails if a new pin leaves them unapplied): bump it only with them.
# Typer 0.29 shows a type after every option, flags included ("--json <bool>"), as if a flag took a value.
# A flag shows none, as Click and the operator expect.
_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = (  # type: ignore[method-assign]
    lambda self, ctx: None if self.is_flag else _display_type(self, ctx))


def _coerce_text_without_pydantic() -> None:
    """Typer 0.29 checks every option's value with a pydantic TypeAdapter that it builds when the option is
    first processed, even for text and for a value left unset; importing pydantic and building them is about
    a third of a short command's start (`txpipe endpoint`). Text (`str`, `str | None`) needs no checking
    and an unset value is None whatever the type, so those skip the adapter; any other value (a number with
    its limits, a path, a choice) gets Typer's own, built when a value first comes. Typer without these
    internals is left as it is: slower to start, the same otherwise."""
    try:
        from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    except ImportError:  # pragma: no cover - another Typer: its own coercion, unchanged
        return
    if getattr(typer.core, "build_runtime_param", None) is not build_runtime_param:  # pragma: no cover
        return
    text = (str, str | None)

    @dataclasses.dataclass(frozen=True)
    class Deferred(RuntimeParam):
        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, str) and self.annotation in text and self.parameter_info.parser is None:
                return value
            typers = build_runtime_param(self.descriptor)
            param._runtime_param = typers  # from now on, Typer's own for this option
            return typers._coerce_value(value, param=param, ctx=ctx)

    typer.core.build_runtime_param = lambda descriptor: Deferred(  # type: ignore[attr-defined]
        parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor)


_coerce_text_without_pydantic()


class TxpipeGroup(typer.core.TyperGroup):
    """The root command: a usage error anywhere under it (parsing its own options, finding a command, parsing
    that command's) is one line on stderr, `error: <reason>; see: txpipe <command> --help`, exit 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=TxpipeGroup,
    name="txpipe",
    help="Operate the pizza-order pipeline: HTTP API -> queue -> PostgreSQL -> warehouse, within a 15-minute SLA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could print connection secrets
    # Click's own help: wrapped to the terminal's width, never cut with an ellipsis (rich's boxed help cut the
    # env var names and examples at 80 columns), and it imports no rich help machinery.
    rich_markup_mode=None,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib import metadata  # 20 ms: only when asked

        typer.echo(f"txpipe {metadata.version('txpipe')}")
        raise typer.Exit()


@app.callback()
def root(
    home: Annotated[str | None, typer.Option(  # text, made a Path below: a Path option costs pydantic (above)
        "--home", envvar="TXPIPE_HOME", show_default=False, metavar="PATH",
        help="Where txpipe keeps its state (deployments, secrets, logs). Default: $XDG_STATE_HOME/txpipe, "
             "else ~/.local/state/txpipe; the TXPIPE_HOME environment variable sets it too.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print txpipe's version and exit.")] = False,
) -> None:
    """Operate the pizza-order pipeline: HTTP API -> queue -> PostgreSQL -> warehouse, within a 15-minute SLA."""
    if home is not None:
        os.environ["TXPIPE_HOME"] = str(Path(home).expanduser().absolute())  # every command resolves it from here


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

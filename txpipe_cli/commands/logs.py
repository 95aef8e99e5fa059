"""logs: what the functions (and the local runtime) wrote, by function and time, and following it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape

from lambdas.functions import FUNCTIONS
from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError
from txpipe_cli.log_records import LEVELS, LogRecord, level_rank
from txpipe_cli.output import console, err_console, handle_errors, stopped
from txpipe_cli.targets import get_target

COLOURS = {"ERROR": "red", "CRITICAL": "red", "WARNING": "yellow", "DEBUG": "dim"}


@handle_errors
def logs(
    function: Annotated[str | None, typer.Argument(
        help=f"One of {', '.join(FUNCTIONS)} (or, locally, runtime: the server, pollers and schedules). "
             "Default: all.", show_default=False)] = None,
    since: Annotated[str, typer.Option(help="How far back: 90s, 10m, 2h, 1d.")] = "10m",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    level: Annotated[str, typer.Option(
        help="The least severe level shown: debug, info, warning or error. Debug adds the reads txpipe makes "
             "through ops for itself (status, report, freshness...) and each invocation's timing.")] = "info",
    debug: Annotated[bool, typer.Option("--debug", help="The same as --level debug.")] = False,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Print what the functions did, oldest first: one line per invocation, with its figures (ingest: accepted
    and refused per request; store: stored, already present, rejected, retried, dead-lettered per batch; sync:
    moved, already present, pending, seconds, rows/s; refresh: the views; ops: the action), and any warning or
    error. Locally from the runtime's log, on AWS from each function's CloudWatch Logs group.

    With --json, one JSON object per line: level, timestamp, service (the function), message, then the figures.
    --follow keeps printing new lines until Ctrl-C.
    """
    names = [*FUNCTIONS, "runtime"] if target == "local" else list(FUNCTIONS)
    if function is not None and function not in names:
        raise OptionError(f"no function {function!r}; one of {', '.join(names)}")
    least = "debug" if debug else level.strip().lower()
    if least.upper() not in LEVELS:
        raise OptionError(f"--level {level!r} is not a level; one of {', '.join(n.lower() for n in LEVELS)}")
    floor = level_rank(least)
    start = datetime.now(UTC) - timedelta(seconds=config.parse_duration(since))
    counts = {"shown": 0, "hidden": 0}
    window = f"in the last {since}" + (f" for {function}" if function else "")

    def caught_up() -> None:  # the window is printed; --follow now waits for new lines
        if not counts["shown"]:
            err_console.print(f"{_nothing(window, counts['hidden'], least)}; waiting for new ones (Ctrl-C stops)",
                              markup=False, highlight=False, soft_wrap=True)

    try:
        for record in _records(target, stage, function, start, follow, caught_up):
            if level_rank(record.level) < floor:
                counts["hidden"] += 1
                continue
            counts["shown"] += 1
            if as_json:
                typer.echo(json.dumps(record.to_dict(), default=str))
            else:
                for line in _lines(record, console.width):
                    console.print(line, highlight=False)
    except KeyboardInterrupt:
        if not follow:
            raise
        stopped()  # Ctrl-C is how a --follow ends: not an error
        return
    if not counts["shown"]:
        err_console.print(_nothing(window, counts["hidden"], least), markup=False, highlight=False, soft_wrap=True)


def _nothing(window: str, hidden: int, least: str) -> str:
    """`no lines in the last 10m for store`, and how to see the lines the level hid, if any."""
    line = f"no lines {window}"
    if hidden:
        lines = f"{hidden} line{'s' if hidden != 1 else ''}"
        line += (f" ({lines} at debug level hidden: --debug shows them)" if least == "info" else
                 f" ({lines} below {least} hidden: --level debug shows them all)")
    return line


FIGURES_INDENT = " " * 4


def _lines(record: LogRecord, width: int) -> list[str]:
    """`2026-12-01 22:30:58 INFO    sync    moved 600 orders`, then its figures (`moved=600 pending=0 ...`)
    folded to the terminal's width under it, each whole (rich markup)."""
    colour = COLOURS.get(record.level, "dim")
    head = (f"[{colour}]{record.at:%Y-%m-%d %H:%M:%S} {record.level:<7}[/] [bold]{record.function:<7}[/] "
            f"{escape(record.message)}")
    figures = [f"{key}={_value(value)}" for key, value in record.figures.items()]
    folded = textwrap.wrap(" ".join(figures), width=max(20, width - len(FIGURES_INDENT)), break_long_words=False,
                           break_on_hyphens=False)
    return [head, *(f"{FIGURES_INDENT}[dim]{escape(line)}[/]" for line in folded)]


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, str) and (not value or " " in value):
        return json.dumps(value)
    return str(value)


def _records(target: str, stage: str, function: str | None, start: datetime, follow: bool,
             caught_up: Callable[[], None]) -> Iterator[LogRecord]:
    """The target's records (local: the runtime's log; AWS: CloudWatch Logs), through Target.logs."""
    return get_target(target, stage=stage).logs(function, start, follow, caught_up=caught_up)

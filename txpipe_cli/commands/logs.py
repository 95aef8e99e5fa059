"""logs: what the functions (and the local runtime) wrote, by function and time, and following it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from lambdas.functions import FUNCTIONS
from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.errors import OptionError, TxpipeError
from txpipe_cli.local.logs import LogRecord
from txpipe_cli.output import console, handle_errors


@handle_errors
def logs(
    function: Annotated[str | None, typer.Argument(
        help=f"One of {', '.join(FUNCTIONS)} (or, locally, runtime: the server, pollers and schedules). "
             "Default: all.", show_default=False)] = None,
    since: Annotated[str, typer.Option(help="How far back: 90s, 10m, 2h, 1d.")] = "10m",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Print the functions' logs, oldest first: locally the runtime's log, on AWS each function's
    CloudWatch Logs group. With --json, one JSON object per line (time, level, function, message)."""
    names = [*FUNCTIONS, "runtime"] if target == "local" else list(FUNCTIONS)
    if function is not None and function not in names:
        raise OptionError(f"no function {function!r}; one of {', '.join(names)}")
    start = datetime.now(UTC) - timedelta(seconds=config.parse_duration(since))
    try:
        for record in _records(target, stage, function, start, follow):
            if as_json:
                typer.echo(json.dumps(record.to_dict()))
            else:
                colour = {"ERROR": "red", "WARNING": "yellow"}.get(record.level, "dim")
                console.print(f"[{colour}]{record.at:%Y-%m-%d %H:%M:%S} {record.level:<7}[/] [bold]{record.function}"
                              f"[/] {escape(record.message)}", highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        if not follow:
            raise
        # Ctrl-C is how a --follow ends: not an error.


def _records(target: str, stage: str, function: str | None, start: datetime, follow: bool) -> Iterator[LogRecord]:
    if target == "aws":
        from txpipe_cli.aws import logs as aws_logs
        from txpipe_cli.aws.client import AwsClient

        return aws_logs.read(AwsClient(), stage, [function] if function else list(FUNCTIONS), start, follow=follow)
    from txpipe_cli.local import logs as local_logs
    from txpipe_cli.local.state import LocalState

    home = config.home()
    state = LocalState.load(home)
    if state is None:
        raise TxpipeError(f"nothing is deployed under {home}", hint="run: txpipe deploy")
    reader = local_logs.follow if follow else local_logs.read
    return reader(state.log_dir, function=function, since=start)

"""Rendering: JSON for scripts on stdout, rich tables for people, errors on stderr."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any, NoReturn

import click
import typer
from rich.console import Console

from txpipe_cli.errors import TxpipeError, aws_error, path_error

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def fail(reason: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C ended


def interrupted(what_goes_on: str | None = None) -> NoReturn:
    """Ctrl-C where it is not the way to stop: one line on stderr saying what goes on without the command
    ("interrupted: the sync continues in the runtime; ..."), exit 130."""
    err_console.print(f"interrupted: {what_goes_on}" if what_goes_on else "interrupted", markup=False,
                      highlight=False, soft_wrap=True)
    raise typer.Exit(INTERRUPTED)


def stopped() -> None:
    """Ctrl-C where it is the way to stop (dashboard, logs --follow): "stopped" on stderr; the command then
    returns, exit 0."""
    err_console.print("stopped", markup=False, highlight=False)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a TxpipeError into one line on stderr and its exit code (usable in tests via CliRunner); Ctrl-C
    that the command did not handle itself into "interrupted", exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TxpipeError as exc:
            fail(exc.line(), int(exc.code))
        except KeyboardInterrupt:
            interrupted()
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise  # exits the command chose itself, and usage errors: Click prints them
        except OSError as exc:  # a file or directory the operator named, or one txpipe writes
            fail(path_error(exc).line())
        except Exception as exc:  # AWS's own, or a bug: still one line, and the traceback on request
            if os.environ.get("TXPIPE_DEBUG"):
                raise
            known = aws_error(exc)
            if known is not None:
                fail(known.line())
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            fail(TxpipeError(f"unexpected {type(exc).__name__}: {first}",
                             hint="run the command again with TXPIPE_DEBUG=1 for the traceback").line())

    return wrapper

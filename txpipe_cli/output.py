"""Rendering: JSON for scripts on stdout, rich tables for people, errors on stderr."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from txpipe_cli.errors import TxpipeError

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def fail(reason: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a TxpipeError into one line on stderr and its exit code (usable in tests via CliRunner)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TxpipeError as exc:
            fail(exc.line(), int(exc.code))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper

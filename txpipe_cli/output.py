"""Rendering: JSON for scripts on stdout, rich tables for people, errors on stderr."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lambdas.core.reasons import one_line
from txpipe_cli.errors import ExitStatus, TxpipeError, aws_error, path_error

try:  # Typer 0.29 carries its own Click (typer._click); an earlier Typer raises Click's own exceptions
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - the Typer pinned here has typer._click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def fail(reason: str, code: int = 1) -> None:
    """The one way an error is printed: `error: <reason>`, one line on stderr, then exit `code`.
    The reason is printed as written: brackets in it (a path, a usage like [OPTIONS]) are not markup."""
    err_console.print(f"[bold red]error:[/] {escape(reason)}", highlight=False, soft_wrap=True)
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
        except (typer.Exit, typer.Abort, click_exceptions.ClickException):
            raise  # exits the command chose itself, and usage errors: one_line_usage_errors prints them
        except OSError as exc:  # a file or directory the operator named, or one txpipe writes
            fail(path_error(exc).line())
        except Exception as exc:  # AWS's own, or a bug: still one line, and the traceback on request
            if os.environ.get("TXPIPE_DEBUG"):
                raise
            known = aws_error(exc)
            if known is not None:
                fail(known.line())
            fail(TxpipeError(f"unexpected {type(exc).__name__}: {one_line(str(exc))}",
                             hint="run the command again with TXPIPE_DEBUG=1 for the traceback").line())

    return wrapper


def usage_line(exc: click_exceptions.UsageError) -> str:
    """Click's usage error as one line, in fail()'s words: the reason, then the help that shows the usage.

    `no such option --show-keys (did you mean --show-key?); see: txpipe endpoint --help`
    """
    if isinstance(exc, click_exceptions.NoSuchOption):
        reason = f"no such option {exc.option_name}"
        if exc.possibilities:
            reason += f" (did you mean {' or '.join(sorted(exc.possibilities))}?)"
    else:
        # Click's message, and what it puts before it: "Invalid value for '--rate': " + "Input should be ..."
        message, full = exc.message, exc.format_message()
        head = full[:len(full) - len(message)] if message and full.endswith(message) else ""
        reason = " ".join((_lower_first(head) + _lower_first(full[len(head):])).split())  # one line
        reason, _, suggestion = reason.partition(" Did you mean ")  # Typer's, for a mistyped command
        reason = reason.rstrip(".")
        if suggestion:
            reason += f" (did you mean {suggestion.rstrip('?')}?)"
    ctx = exc.ctx or _innermost_context(exc)
    return f"{reason}; see: {ctx.command_path if ctx is not None else 'txpipe'} --help"


def _lower_first(text: str) -> str:
    """`Missing argument` -> `missing argument`, leaving `AWS ...` and `--rate` as they are."""
    return text[:1].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text


def _innermost_context(exc: BaseException) -> Any:
    """The context of the command being parsed when Click raised without naming one (an option missing
    its value): the last `ctx` on the way down the traceback, so the hint names `txpipe dlq list`, not `txpipe`."""
    found, tb = None, exc.__traceback__
    while tb is not None:
        ctx = tb.tb_frame.f_locals.get("ctx")
        if ctx is not None and hasattr(ctx, "command_path"):
            found = ctx
        tb = tb.tb_next
    return found


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Turns Click's errors into fail()'s one line on stderr, for the root command to wrap parsing and
    invoking in: a usage error (unknown option or command, bad value, missing argument) exits 2, as Click's
    own would, without Click's usage block and rich's box. Help shown for a group given no command stays."""
    try:
        yield
    except click_exceptions.NoArgsIsHelpError:
        raise
    except click_exceptions.UsageError as exc:
        fail(usage_line(exc), int(ExitStatus.USAGE))
    except click_exceptions.ClickException as exc:  # e.g. a file Click could not open
        fail(" ".join(exc.format_message().split()), exc.exit_code)
    except typer.Abort:  # a confirmation answered no (or Ctrl-C at its prompt): Click's own says "Aborted!"
        fail("aborted: not confirmed", int(ExitStatus.ERROR))


def folding_table(*headers: Any, **options: Any) -> Any:
    """A rich Table whose columns fold what does not fit onto more lines, never cutting it with an ellipsis:
    an id, a timestamp or a figure is read whole at 80 columns. A header may be a rich Column (its own
    settings kept, overflow folded)."""
    from rich.table import Column, Table

    columns = [h if isinstance(h, Column) else Column(h) for h in headers]
    for column in columns:
        column.overflow = "fold"
    made = Table(*columns, **options)
    return made

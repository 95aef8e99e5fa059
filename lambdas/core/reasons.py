"""An error as a reason: one short line, the same in the functions and in the CLI.

A reason is read where one line is expected: after `error: ` on the operator's terminal, in a status table's
cell, in a log record's field, as a dead letter's reason, in the dashboard's banner. Drivers' messages span
lines (psycopg2 adds DETAIL, HINT, CONTEXT and a caret line under the statement), and some echo a whole
statement or payload back; `one_line` keeps the first line, which is the reason, and bounds it.

Standard library only: the Lambda functions and the CLI both import it.
"""

from __future__ import annotations

# 300 characters: about four lines at 80 columns, which holds a driver's primary message with the value or name
# it quotes, while a message that echoes a statement or a payload back stops short of burying the rest of a
# status table or a log line. A reason rides in replies and queue attributes whose size must not grow with the
# data (tests/aws/test_limits.py: an ops reply stays small with every store failing).
REASON_LIMIT = 300


def one_line(error: BaseException | str | None, limit: int = REASON_LIMIT) -> str:
    """The first non-blank line of an error's message (psycopg2's primary message when it has one), its
    whitespace collapsed, cut at `limit` characters; an exception without a message is named by its type.

    `one_line(exc)` -> `relation "orders" does not exist`, not its `LINE 1: SELECT ...` and caret lines."""
    if isinstance(error, BaseException):
        primary = getattr(getattr(error, "diag", None), "message_primary", None)
        text = str(primary or error)
        fallback = type(error).__name__
    else:
        text, fallback = "" if error is None else str(error), ""
    first = next((line for line in text.splitlines() if line.strip()), fallback)
    return " ".join(first.split())[:limit]

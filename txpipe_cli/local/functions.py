"""The local target's functions as the operator reaches them (LocalTarget.invoke and .logs): each invoked once
through the runtime's Invoke API on its control socket (txpipe_cli/local/control.py), and what they did read
back from the runtime's log (txpipe_cli/local/logs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from lambdas.core.reasons import one_line
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local import control
from txpipe_cli.local import logs as runtime_log
from txpipe_cli.local.state import LocalState
from txpipe_cli.log_records import LogRecord


def invoke(state: LocalState, function: str, payload: dict[str, Any], timeout: float) -> Any:
    """Runs `function` once in the runtime and returns its answer. `timeout` is the socket's: a runtime that
    does not answer within it is one TxpipeError line (the function may still be running, and is not run
    again). A function's failure, or its {"error": ...} (a caller's mistake), is a TxpipeError too."""
    status, headers, body = control.call(state.invoke_socket, "POST",
                                         f"/2015-03-31/functions/{function}/invocations", payload,
                                         timeout=timeout, what=f"the {function} function")
    if status != 200:
        message = body.get("errorMessage") or body.get("message") if isinstance(body, dict) else body
        raise TxpipeError(f"the local runtime refused to invoke {function}: {message}")
    if headers.get("x-amz-function-error"):
        raise TxpipeError(f"the {function} function failed: {one_line(body.get('errorMessage'))}",
                          hint=f"see {state.log_dir / 'runtime.log'}")
    if isinstance(body, dict) and "error" in body:
        raise TxpipeError(one_line(body["error"]))
    return body


def logs(state: LocalState, function: str | None, since: datetime, follow: bool,
         caught_up: Callable[[], None]) -> Iterator[LogRecord]:
    """The runtime's records since `since`, of `function` (None: every one); with `follow`, then (`caught_up()`
    called in between) each new record as it is written, until the caller stops reading."""
    if follow:
        return runtime_log.follow(state.log_dir, function=function, since=since, caught_up=caught_up)
    return runtime_log.read(state.log_dir, function=function, since=since)

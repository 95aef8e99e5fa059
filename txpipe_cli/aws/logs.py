"""Reading the functions' CloudWatch Logs on AWS (`txpipe logs --target aws`), as `sam logs` does.

Each function logs to /aws/lambda/txpipe-<stage>-<function> (infra/template.yaml); events come back
in time order across the functions asked for, and --follow polls for new ones.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from txpipe_cli.aws.client import AwsClient
from txpipe_cli.errors import TxpipeError, aws_error
from txpipe_cli.log_records import LogRecord, from_structured, structured


def _events(aws: AwsClient, group: str, start_ms: int) -> Iterator[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    logs = aws.client("logs")
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
        if token:
            kwargs["nextToken"] = token
        try:
            page = logs.filter_log_events(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return  # the function never ran: no log group yet
            raise TxpipeError(f"AWS logs.filter_log_events failed: {exc.response.get('Error', {}).get('Message')}",
                              hint="run: txpipe doctor --target aws") from None
        except BotoCoreError as exc:
            raise aws_error(exc) or TxpipeError(f"AWS logs.filter_log_events failed: {exc}") from None
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token:
            return


# Lambda's own lines (platform lines and the Python runtime's prefix), as Text log format writes them.
_PLATFORM = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT|RESTORE_START|RESTORE_REPORT|EXTENSION|"
                       r"TELEMETRY)\b")
_FAILED_REPORT = re.compile(r"\bStatus: (timeout|error)\b")
_PYTHON_PREFIX = re.compile(r"^\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\]\t\S+Z\t[0-9a-f-]{36}\t(.*)$", re.DOTALL)


def _record(function: str, event: dict[str, Any]) -> LogRecord:
    """One log event as a record:

    - a function's structured line (lambdas.core.log: one JSON object) as the function wrote it;
    - the sync's metric line (Embedded Metric Format, an `_aws` member) at debug level, its figures apart;
    - Lambda's START/END/REPORT lines at debug level (a REPORT that says the invocation timed out or failed, and
      the "Task timed out" line, as errors);
    - a line of Python logging through Lambda's handler ("[ERROR]\\t<time>\\t<request id>\\t<message>") at
      its level, the prefix left out; anything else (print, a traceback) as it is.
    """
    at = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    message = str(event.get("message", "")).rstrip("\n")
    record = structured(message)
    if record is not None:
        line = from_structured(record, at, "lambda")
        line.function = function  # its service, as the log group says
        return line
    if message.startswith("{") and '"_aws"' in message:
        try:
            document = json.loads(message)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("_aws"), dict):
            figures = {key: value for key, value in document.items() if key != "_aws"}
            return LogRecord(at, "DEBUG", function, "metrics", "metrics", figures, structured=True)
    platform = _PLATFORM.match(message)
    if platform:
        failed = platform.group(1) == "REPORT" and _FAILED_REPORT.search(message)
        return LogRecord(at, "ERROR" if failed else "DEBUG", function, "lambda", message)
    prefixed = _PYTHON_PREFIX.match(message)
    if prefixed:
        return LogRecord(at, prefixed.group(1), function, "lambda", prefixed.group(2))
    # A bare "[ERROR] ..." line (an uncaught exception, an import error): its level, the text as it is.
    fields = [field.strip("[]") for field in message.split("\t", 3)[:3]]
    level = next((word for word in ("ERROR", "WARNING", "INFO", "DEBUG") if word in fields),
                 "ERROR" if "Task timed out after" in message else "INFO")
    return LogRecord(at, level, function, "lambda", message)


def read(aws: AwsClient, stage: str, functions: list[str], since: datetime, *, follow: bool = False,
         stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
         poll: float = 2.0, caught_up: Callable[[], None] = lambda: None) -> Iterator[LogRecord]:
    """The functions' events since `since`, in time order; with follow, then (`caught_up()` called in between)
    each new one once, polling until stop()."""
    start_ms = int(since.timestamp() * 1000)
    seen: set[str] = set()
    while True:
        batch = [(event["timestamp"], function, event) for function in functions
                 for event in _events(aws, f"/aws/lambda/txpipe-{stage}-{function}", start_ms)
                 if event.get("eventId") not in seen]
        for timestamp, function, event in sorted(batch, key=lambda item: item[0]):
            seen.add(event.get("eventId", ""))
            start_ms = max(start_ms, timestamp)
            yield _record(function, event)
        if not follow:
            return
        caught_up()
        caught_up = _nothing  # once, after the window
        if stop():
            return
        sleep(poll)


def _nothing() -> None:
    pass

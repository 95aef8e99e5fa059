"""Reading the functions' CloudWatch Logs on AWS (`txpipe logs --target aws`), as `sam logs` does.

Each function logs to /aws/lambda/txpipe-<stage>-<function> (infra/template.yaml); events come back
in time order across the functions asked for, and --follow polls for new ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from txpipe_cli.aws.client import AwsClient
from txpipe_cli.errors import TxpipeError, aws_error
from txpipe_cli.local.logs import LogRecord


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


def _record(function: str, event: dict[str, Any]) -> LogRecord:
    message = str(event.get("message", "")).rstrip("\n")
    # Lambda's Python runtime writes "[ERROR]\t<time>\t<request id>\t<message>".
    fields = [field.strip("[]") for field in message.split("\t", 3)[:3]]
    level = next((word for word in ("ERROR", "WARNING", "INFO", "DEBUG") if word in fields), "INFO")
    return LogRecord(datetime.fromtimestamp(event["timestamp"] / 1000, UTC), level, function, "lambda", message)


def read(aws: AwsClient, stage: str, functions: list[str], since: datetime, *, follow: bool = False,
         stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
         poll: float = 2.0) -> Iterator[LogRecord]:
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
        if not follow or stop():
            return
        sleep(poll)

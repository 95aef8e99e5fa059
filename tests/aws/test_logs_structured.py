"""`txpipe logs --target aws` over what Lambda really writes to CloudWatch Logs (through moto): the functions' JSON
lines rendered as the local runtime's log renders them, Lambda's own lines and the sync's metric line at debug
level, a timed-out invocation as an error, and the empty window said."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from typer.testing import CliRunner

from lambdas.core import log
from lambdas.core.metrics import backlog_document
from tests.aws.sqs_helpers import REGION
from txpipe_cli.app import app
from txpipe_cli.aws import logs as aws_logs
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.commands.logs import _lines
from txpipe_cli.local import logs as local_logs
from txpipe_cli.local import runtime

runner = CliRunner()
REQUEST = "8f5c8a9e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"


def put(function: str, *messages: tuple[int, str]) -> None:
    client = boto3.client("logs", region_name=REGION)
    group = f"/aws/lambda/txpipe-dev-{function}"
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="2026/12/01/[$LATEST]abc")
    client.put_log_events(logGroupName=group, logStreamName="2026/12/01/[$LATEST]abc",
                          logEvents=[{"timestamp": ts, "message": text} for ts, text in messages])


def txpipe(*args: str) -> Any:
    return runner.invoke(app, ["logs", *args, "--target", "aws", "--stage", "dev"])


def sync_record(now_ms: int) -> dict[str, Any]:
    at = datetime.fromtimestamp(now_ms / 1000, UTC)
    return log.line("sync", "moved 600 orders", at=at, moved=600, already_present=0, pending=0, seconds=0.139,
                    rows_per_second=4317, batches=1, trigger="schedule")


def lambda_day(now: int) -> dict[str, Any]:
    """A scheduled sync's invocation as Lambda logs it, then a timed-out one."""
    record = sync_record(now - 4000)
    emf = backlog_document(0.0, 0, namespace="txpipe", stage="dev", timestamp_ms=now - 4000)
    put("sync",
        (now - 5000, f"START RequestId: {REQUEST} Version: $LATEST"),
        (now - 4500, f"[WARNING]\t2026-12-01T22:30:57.000Z\t{REQUEST}\tbatch failed; storing one by one"),
        (now - 4000, json.dumps(emf, separators=(",", ":"))),
        (now - 4000, json.dumps(record, separators=(",", ":"))),
        (now - 3900, f"END RequestId: {REQUEST}"),
        (now - 3900, f"REPORT RequestId: {REQUEST}\tDuration: 139.00 ms\tBilled Duration: 140 ms\t"
                     "Memory Size: 1024 MB\tMax Memory Used: 90 MB"),
        (now - 1000, f"REPORT RequestId: {REQUEST}\tDuration: 300000.00 ms\tBilled Duration: 300000 ms\t"
                     "Memory Size: 1024 MB\tMax Memory Used: 90 MB\tStatus: timeout"))
    return record


def records(out: str) -> list[str]:
    """The printed records, each with what folded under it (its figures, a wrapped message) joined back."""
    joined: list[str] = []
    for line in out.splitlines():
        if re.match(r"\d{4}-\d\d-\d\d ", line) or not joined:
            joined.append(line)
        else:
            joined[-1] += " " + line.strip()
    return joined


def test_the_functions_json_lines_are_shown_with_their_figures_and_lambdas_own_at_debug(aws: None) -> None:
    now = int(time.time() * 1000)
    record = lambda_day(now)
    shown = txpipe("sync")
    assert shown.exit_code == 0, shown.output
    assert all(len(line) <= 80 for line in shown.stdout.splitlines())  # folded, not cut, at 80 columns
    lines = records(shown.stdout)
    assert len(lines) == 3, lines  # the warning, the sync's line, the timed-out REPORT
    assert "WARNING" in lines[0] and lines[0].endswith("sync    batch failed; storing one by one")
    assert " INFO    sync    moved 600 orders moved=600 already_present=0 pending=0 seconds=0.139 " \
           "rows_per_second=4317 batches=1 trigger=schedule" in lines[1]
    assert "ERROR" in lines[2] and "Status: timeout" in lines[2]
    everything = records(txpipe("sync", "--debug").stdout)
    assert len(everything) == 7
    assert any("metrics Stage=dev OldestPendingSeconds=0.0 PendingOrders=0" in line for line in everything)
    as_json = [json.loads(line) for line in txpipe("sync", "--json").stdout.splitlines()]
    assert as_json[1] == record  # the structured record as the function wrote it


def test_aws_and_local_render_the_same_record_alike(aws: None, tmp_path: Path) -> None:
    """The same record, written by the local runtime into its log and by Lambda into CloudWatch, reads back
    into the same line and the same JSON."""
    now = int(time.time() * 1000)
    record = sync_record(now)
    put("sync", (now, json.dumps(record, separators=(",", ":"))))
    [from_aws] = aws_logs.read(AwsClient(), "dev", ["sync"], datetime.fromtimestamp((now - 1000) / 1000, UTC))

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        runtime._log_to(tmp_path / "runtime.log")
        token = runtime.current_function.set("sync")
        logging.getLogger(log.LOGGER_NAME).info(json.dumps(record))
        runtime.current_function.reset(token)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    [from_local] = local_logs.read(tmp_path)
    assert _lines(from_aws, 80) == _lines(from_local, 80)
    assert from_aws.to_dict() == from_local.to_dict() == record


def test_an_empty_window_says_so(aws: None) -> None:
    now = int(time.time() * 1000)
    put("ops", (now - 1000, json.dumps(log.line("ops", "status", level=log.DEBUG, action="status"))))
    empty = txpipe("store")
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert empty.stderr.strip() == "no lines in the last 10m for store"
    hidden = txpipe("ops")
    assert (hidden.exit_code, hidden.stdout) == (0, "")
    assert hidden.stderr.strip() == ("no lines in the last 10m for ops "
                                     "(1 line at debug level hidden: --debug shows them)")
    assert records(txpipe("ops", "--level", "debug").stdout)[0].endswith("ops     status action=status")

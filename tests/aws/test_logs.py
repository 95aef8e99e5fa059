"""`txpipe logs --target aws`: the functions' CloudWatch Logs groups read through moto, merged in time order."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from tests.aws.sqs_helpers import REGION
from txpipe_cli.aws import logs
from txpipe_cli.aws.client import AwsClient


def put(client: Any, function: str, *messages: tuple[int, str]) -> None:
    group = f"/aws/lambda/txpipe-dev-{function}"
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    client.put_log_events(logGroupName=group, logStreamName="s",
                          logEvents=[{"timestamp": ts, "message": text} for ts, text in messages])


def test_events_of_several_functions_come_back_in_time_order(aws: None) -> None:
    client = boto3.client("logs", region_name=REGION)
    now = int(time.time() * 1000)
    put(client, "sync", (now - 3000, "START sync"), (now - 1000, "[ERROR]\tboom"))
    put(client, "refresh", (now - 2000, "refreshed"))
    since = datetime.now(UTC) - timedelta(minutes=5)
    records = list(logs.read(AwsClient(), "dev", ["sync", "refresh", "ops"], since))  # ops never ran: no group
    assert [(r.function, r.message) for r in records] == [("sync", "START sync"), ("refresh", "refreshed"),
                                                          ("sync", "[ERROR]\tboom")]
    assert records[-1].level == "ERROR"
    later = datetime.fromtimestamp((now - 1500) / 1000, UTC)
    assert [r.message for r in logs.read(AwsClient(), "dev", ["sync"], later)] == ["[ERROR]\tboom"]


def test_follow_prints_each_new_event_once(aws: None) -> None:
    client = boto3.client("logs", region_name=REGION)
    now = int(time.time() * 1000)
    put(client, "ops", (now - 1000, "first"))
    polls: list[int] = []

    def sleep(_: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            client.put_log_events(logGroupName="/aws/lambda/txpipe-dev-ops", logStreamName="s",
                                  logEvents=[{"timestamp": now, "message": "second"}])

    seen = [r.message for r in logs.read(AwsClient(), "dev", ["ops"], datetime.now(UTC) - timedelta(minutes=1),
                                         follow=True, stop=lambda: len(polls) >= 3, sleep=sleep)]
    assert seen == ["first", "second"]

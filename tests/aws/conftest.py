"""Fixtures for the SQS tests: fake credentials, everything inside moto's mock_aws.

No test here reaches AWS: credentials are fake, endpoint overrides and profiles are
removed, shared config/credential files point nowhere, and every boto3 client is
built inside `mock_aws()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.core.queue import SqsQueue
from tests.aws.sqs_helpers import REGION

VISIBILITY_TIMEOUT = 5  # seconds; short, yet far longer than any test keeps a message in flight
MAX_RECEIVE_COUNT = 2

_REMOVED = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass(frozen=True)
class QueueUrls:
    queue: str
    dlq: str
    queue_arn: str
    dlq_arn: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials and region; all AWS calls inside go to moto."""
    for name in _REMOVED:
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    with mock_aws():
        yield


@pytest.fixture
def sqs_client(aws: None) -> Any:
    """A boto3 SQS client created inside the mock."""
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def sleeps() -> list[float]:
    """Back-off delays SqsQueue asked for (it never really sleeps in these tests)."""
    return []


@pytest.fixture
def orders_queue(sqs_client: Any, sleeps: list[float]) -> tuple[SqsQueue, Any, QueueUrls]:
    """`orders` with `orders-dlq` attached (maxReceiveCount 2, short visibility): (SqsQueue, client, urls)."""
    dlq_url = sqs_client.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs_client.create_queue(
        QueueName="orders",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = SqsQueue(url, dlq_url=dlq_url, client=sqs_client, sleep=sleeps.append)
    return queue, sqs_client, QueueUrls(url, dlq_url, arn, dlq_arn)

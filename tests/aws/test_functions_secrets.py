"""The ops function's admin secrets, which AWS rotates: read at connect only, never cached, so a warm
function keeps its open connection and its next connection after a rotation logs in with the new password
(lambdas/core/db.py, against moto's Secrets Manager)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg2
import pytest

from lambdas.core import db
from tests.aws.sqs_helpers import REGION


class FakeConnection:
    closed = 0
    autocommit = False


@pytest.fixture
def managed_secret(aws: None) -> str:
    """A secret shaped as RDS and Redshift keep their managed admin secrets: {"username", "password"}."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    return secrets.create_secret(Name="rds!db-0123", SecretString=json.dumps(
        {"username": "txpipe_admin", "password": "first"}))["ARN"]


def rotate(arn: str, password: str) -> None:
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "txpipe_admin", "password": password}))


def test_each_connection_reads_the_secret_as_it_is_then(managed_secret: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection opened after a rotation logs in with the new password, by the secret's ARN."""
    logins: list[dict[str, Any]] = []
    monkeypatch.setattr(psycopg2, "connect", lambda **kwargs: logins.append(kwargs) or FakeConnection())
    endpoint = db.Endpoint("oltp.example", 5432, "txpipe", managed_secret)
    db.connect_postgres(endpoint)
    rotate(managed_secret, "second")
    db.connect_postgres(endpoint)
    assert [(login["user"], login["password"]) for login in logins] == [("txpipe_admin", "first"),
                                                                         ("txpipe_admin", "second")]


def test_a_warm_function_reuses_its_connection_without_reading_the_secret(
        managed_secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached per warm function: the secret is read once, at connect, not on every use of the connection."""
    reads: list[str] = []
    read = db.read_secret
    monkeypatch.setattr(db, "read_secret", lambda ref: reads.append(ref) or read(ref))
    monkeypatch.setattr(psycopg2, "connect", lambda **kwargs: FakeConnection())
    endpoint = db.Endpoint("oltp.example", 5432, "txpipe", managed_secret)
    key = ("oltp-secrets-test", endpoint)
    try:
        first = db.cached_connection(key, lambda: db.connect_postgres(endpoint))
        rotate(managed_secret, "second")
        again = db.cached_connection(key, lambda: db.connect_postgres(endpoint))
    finally:
        db.drop_cached("oltp-secrets-test")
    assert again is first and reads == [managed_secret]

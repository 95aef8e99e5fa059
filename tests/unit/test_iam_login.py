"""How the AWS functions log in without a secret: RDS IAM tokens, Redshift IAM credentials, and the
Redshift users and grants the ops migration makes for them. RDS and Redshift cannot run here, so the
driver's connect is captured (psycopg2, redshift-connector) and the SQL is parsed as Redshift's."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import sqlglot

from lambdas.core import access, db, schema
from lambdas.core.db import Endpoint
from lambdas.core.warehouse import redshift
from tests.support.fakes import SelfCursor

RDS = Endpoint("txpipe-dev-oltp.abc.us-east-1.rds.amazonaws.com", 5432, "txpipe", "iam:txpipe_store")


def test_an_rds_token_is_a_signed_connect_request_for_the_user() -> None:
    client = boto3.client("rds", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLE",
                          aws_secret_access_key="secret-example")
    token = db.rds_auth_token(RDS, "txpipe_store", client=client)
    parts = urlsplit("https://" + token)
    query = parse_qs(parts.query)
    assert parts.hostname == RDS.host and parts.port == 5432
    assert query["Action"] == ["connect"] and query["DBUser"] == ["txpipe_store"]
    assert query["X-Amz-Expires"] == ["900"] and "X-Amz-Signature" in query


def test_an_iam_endpoint_connects_with_a_token_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg2

    seen: dict[str, Any] = {}
    monkeypatch.setattr(db, "rds_auth_token", lambda endpoint, user: f"token-for-{user}")
    monkeypatch.setattr(psycopg2, "connect", lambda **kwargs: seen.update(kwargs) or type("C", (), {})())
    db.connect_postgres(RDS)
    assert (seen["user"], seen["password"], seen["sslmode"]) == ("txpipe_store", "token-for-txpipe_store", "require")
    assert seen["keepalives"] == 1 and seen["connect_timeout"] == 10


def test_a_file_secret_never_touches_iam(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import psycopg2

    secret = tmp_path / "s.json"
    secret.write_text('{"username": "u", "password": "p"}')
    seen: dict[str, Any] = {}
    monkeypatch.setattr(psycopg2, "connect", lambda **kwargs: seen.update(kwargs) or type("C", (), {})())
    db.connect_postgres(Endpoint("127.0.0.1", 5432, "d", f"file:{secret}"))
    assert (seen["user"], seen["password"]) == ("u", "p") and "sslmode" not in seen


@pytest.mark.parametrize(("target", "expected"), [
    ({"workgroup": "txpipe-dev", "region": "us-east-1"},
     {"iam": True, "group_federation": False, "is_serverless": True, "serverless_work_group": "txpipe-dev",
      "region": "us-east-1"}),
    ({"cluster": "txpipe-dev", "region": "eu-west-1"},
     {"iam": True, "group_federation": True, "cluster_identifier": "txpipe-dev", "region": "eu-west-1"}),
])
def test_redshift_iam_login_settings(target: dict[str, str], expected: dict[str, Any]) -> None:
    assert redshift.iam_login(target) == expected


def test_redshift_iam_login_needs_a_workgroup_or_a_cluster() -> None:
    with pytest.raises(RuntimeError, match="WORKGROUP or TXPIPE_WAREHOUSE_CLUSTER"):
        redshift.iam_login({"region": "us-east-1"})


def test_connect_redshift_with_iam_passes_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import redshift_connector

    seen: dict[str, Any] = {}
    monkeypatch.setattr(redshift_connector, "connect", lambda **kwargs: seen.update(kwargs) or type("C", (), {})())
    redshift.connect_redshift(Endpoint("wg.123.us-east-1.redshift-serverless.amazonaws.com", 5439, "txpipe",
                                       "iam:role"), iam_target={"workgroup": "txpipe-dev", "region": "us-east-1"})
    assert seen["iam"] is True and seen["serverless_work_group"] == "txpipe-dev"
    assert "password" not in seen and "user" not in seen
    assert (seen["ssl"], seen["sslmode"]) == (True, "verify-full")


class Recorder(SelfCursor):
    """A connection answering the existence and owner checks as a fresh Redshift would."""

    def __init__(self, users: set[str], owner: str) -> None:
        self.users, self.owner, self.statements = users, owner, []
        self._last: Any = None

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)
        if "FROM pg_user" in sql:
            self._last = (int(params[0] in self.users),)
        elif "FROM pg_class" in sql:
            self._last = (self.owner,)

    def fetchone(self) -> Any:
        return self._last

    def commit(self) -> None:
        pass


SYNC, REFRESH = "IAMR:txpipe-dev-SyncRole-1A2B3C", "IAMR:txpipe-dev-RefreshRole-4D5E6F"


def test_redshift_users_grants_and_view_owner_on_a_fresh_warehouse() -> None:
    conn = Recorder(users=set(), owner="admin")
    ran = access.redshift_access(conn, SYNC, REFRESH)
    assert ran[:2] == [f'CREATE USER "{SYNC}" PASSWORD DISABLE', f'CREATE USER "{REFRESH}" PASSWORD DISABLE']
    assert f'GRANT SELECT, INSERT ON orders_fact TO "{SYNC}"' in ran
    assert f'GRANT SELECT ON orders_fact, state_population TO "{REFRESH}"' in ran
    for view in schema.VIEW_DDL:
        at = ran.index(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
        assert ran[at + 1:at + 4] == [f'SET SESSION AUTHORIZATION "{REFRESH}"', schema.VIEW_DDL[view],
                                      "SET SESSION AUTHORIZATION DEFAULT"]
    for statement in ran:
        sqlglot.parse_one(statement, read="redshift")  # raises on what Redshift's grammar refuses


def test_redshift_access_again_only_regrants() -> None:
    ran = access.redshift_access(Recorder(users={SYNC, REFRESH}, owner=REFRESH), SYNC, REFRESH)
    assert all(s.startswith("GRANT") for s in ran) and len(ran) == 5


@pytest.mark.parametrize("bad", ['IAMR:x"; DROP TABLE orders_fact; --', "", "a b"])
def test_a_user_name_that_is_not_ours_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a database user name"):
        access.redshift_access(Recorder(set(), "admin"), bad, REFRESH)


def test_the_serverless_admin_secret_is_found_through_its_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """redshift-serverless:namespace/<name>: GetNamespace says where the managed secret is, then it is read
    (requests checked against the services' API models by botocore's Stubber)."""
    from botocore.stub import Stubber

    creds = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    serverless, secrets = boto3.client("redshift-serverless", **creds), boto3.client("secretsmanager", **creds)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redshift!txpipe-dev-admin-AbCdEf"
    with Stubber(serverless) as ns, Stubber(secrets) as sm:
        ns.add_response("get_namespace", {"namespace": {"namespaceName": "txpipe-dev", "adminPasswordSecretArn": arn}},
                        {"namespaceName": "txpipe-dev"})
        sm.add_response("get_secret_value", {"SecretString": '{"username": "txpipe_admin", "password": "p"}'},
                        {"SecretId": arn})
        monkeypatch.setattr(boto3, "client", lambda service, **_: {"redshift-serverless": serverless,
                                                                    "secretsmanager": secrets}[service])
        assert db.read_secret("redshift-serverless:namespace/txpipe-dev") == {"username": "txpipe_admin",
                                                                             "password": "p"}

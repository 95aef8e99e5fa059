"""The sync and refresh functions' IAM login to Redshift, through redshift-connector's own `connect`.

Nothing is replaced but the network edge: `connect_redshift` builds the driver's arguments with `iam_login`,
the driver decides which credentials API to call and builds its own boto3 client, whose call is answered by
botocore's Stubber (the operation and its parameters checked against the service's model), and the driver's
socket, once it has those credentials, is pointed at the loopback shim in front of PostgreSQL, where a role
named as Redshift names an IAM role's user (IAMR:<role>) logs in with them. The settings txpipe once passed
for Serverless (group federation on) made the driver call GetClusterCredentialsWithIAM on the
redshift-serverless client, an operation that service does not have: that fails here as on AWS.
The driver insists on TLS with IAM; the shim presents a certificate for the Redshift host names from a
throwaway CA (tests/support/tls.py) that the driver trusts through SSL_CERT_FILE, so its verify-full runs as on AWS.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import redshift_connector
from botocore.stub import Stubber
from redshift_connector.iam_helper import IamHelper

from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.warehouse import redshift
from tests.integration.helpers import md5_login, retry_until
from tests.support.redshift_shim import RedshiftShim
from tests.support.tls import make_ca

ACCOUNT, REGION, STAGE = "123456789012", "us-east-1", "txpipe-iam"
IAM_USER = "IAMR:txpipe-iam-SyncRole-1A2B3C4D"  # how Redshift names the sync role's database user
DATABASE = "test_rs_iam"
# The endpoints the stack hands the functions (infra/template.yaml): a workgroup's and a cluster's.
SERVERLESS_HOST = f"{STAGE}.{ACCOUNT}.{REGION}.redshift-serverless.amazonaws.com"
CLUSTER_HOST = f"{STAGE}.c1a2b3c4d5e6.{REGION}.redshift.amazonaws.com"
EXPIRES = datetime.now(UTC) + timedelta(minutes=15)


@dataclass(frozen=True)
class Login:
    shim: RedshiftShim
    password: str  # the IAMR: role's, which the stubbed credentials call hands out
    ca_file: Path  # the CA the driver is made to trust


@pytest.fixture(scope="module")
def login(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    """The IAMR: role (md5) with a database of its own, behind the shim (TLS, certificate for the Redshift
    hosts); yields the shim and the password."""
    server, admin_ref = pg_server
    password = "iam-" + os.urandom(8).hex()
    ca = make_ca(tmp_path_factory.mktemp("tls"), [SERVERLESS_HOST, CLUSTER_HOST])
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    shim = RedshiftShim(server.port, tls=ca.server).start()
    try:
        with md5_login(server, admin, IAM_USER, password, DATABASE):
            # Ready once the server has re-read pg_hba.conf: the role logs in through the shim by password.
            retry_until(lambda: redshift_connector.connect(host="127.0.0.1", port=shim.port, database=DATABASE,
                                                           user=IAM_USER, password=password, ssl=False).close())
            yield Login(shim, password, ca.ca_file)
    finally:
        shim.stop()
        admin.close()


class Edge:
    """What AWS answers (per service: operation, response, expected parameters), and the Stubbers made."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {}
        self.stubbers: list[Stubber] = []

    def expect(self, service: str, operation: str, response: dict[str, Any], params: dict[str, Any]) -> None:
        self.answers.setdefault(service, []).append((operation, response, params))

    def services(self) -> list[str]:
        return [s.client.meta.service_model.service_name for s in self.stubbers]

    def assert_all_answered(self) -> None:
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()


@pytest.fixture
def network_edge(login: Login, monkeypatch: pytest.MonkeyPatch) -> Iterator[Edge]:
    """AWS answered by Stubbers on the real clients the driver builds; the Redshift hosts resolve to the shim."""
    edge = Edge()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("SSL_CERT_FILE", str(login.ca_file))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    real_client, real_getaddrinfo = boto3.session.Session.client, socket.getaddrinfo

    def client(self: Any, *args: Any, **kwargs: Any) -> Any:
        built = real_client(self, *args, **kwargs)
        stubber = Stubber(built)
        edge.stubbers.append(stubber)
        for operation, response, expected in edge.answers.get(built.meta.service_model.service_name, []):
            stubber.add_response(operation, response, expected)
        stubber.activate()
        return built

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (SERVERLESS_HOST, CLUSTER_HOST):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", login.shim.port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    # The driver builds its client from a boto3 Session of its own: every session's clients get a Stubber.
    monkeypatch.setattr(boto3.session.Session, "client", client)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    IamHelper.credentials_cache.clear()  # the driver caches credentials per process; each test asks anew
    yield edge
    IamHelper.credentials_cache.clear()


def whoami(conn: Any) -> str:
    cur = conn.cursor()
    cur.execute("SELECT current_user, current_database()")
    user, database = cur.fetchone()
    conn.close()
    assert database == DATABASE
    return user


def test_serverless_logs_in_with_get_credentials(login: Login,
                                                  network_edge: Edge) -> None:
    """Serverless: redshift-serverless GetCredentials for the workgroup, then the driver logs in as IAMR:<role>."""
    password = login.password
    network_edge.expect("redshift-serverless", "get_credentials",
           {"dbUser": IAM_USER, "dbPassword": password, "expiration": EXPIRES, "nextRefreshTime": EXPIRES},
           {"dbName": DATABASE, "workgroupName": STAGE})
    conn = redshift.connect_redshift(Endpoint(SERVERLESS_HOST, 5439, DATABASE, "iam:role"),
                                     iam_target={"workgroup": STAGE, "region": REGION})
    assert whoami(conn) == IAM_USER
    assert login.shim.tls_sessions >= 1
    assert network_edge.services() == ["redshift-serverless"]
    network_edge.assert_all_answered()


def test_provisioned_cluster_logs_in_with_get_cluster_credentials_with_iam(
        login: Login, network_edge: Edge) -> None:
    """A provisioned cluster: redshift GetClusterCredentialsWithIAM, the same IAMR:<role> user."""
    password = login.password
    network_edge.expect("redshift", "get_cluster_credentials_with_iam",
           {"DbUser": IAM_USER, "DbPassword": password, "Expiration": EXPIRES, "NextRefreshTime": EXPIRES},
           {"DbName": DATABASE, "ClusterIdentifier": STAGE, "DurationSeconds": 900})
    conn = redshift.connect_redshift(Endpoint(CLUSTER_HOST, 5439, DATABASE, "iam:role"),
                                     iam_target={"cluster": STAGE, "region": REGION})
    assert whoami(conn) == IAM_USER
    assert network_edge.services() == ["redshift"]
    network_edge.assert_all_answered()


def test_group_federation_on_serverless_calls_an_operation_serverless_lacks(
        network_edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings txpipe used to pass for Serverless fail in the driver before any network call."""
    monkeypatch.setattr(redshift, "iam_login", lambda target: {
        "iam": True, "group_federation": True, "is_serverless": True,
        "serverless_work_group": target["workgroup"], "region": target["region"]})
    network_edge.expect("redshift-serverless", "get_credentials", {}, {})
    with pytest.raises(AttributeError, match="get_cluster_credentials_with_iam"):
        redshift.connect_redshift(Endpoint(SERVERLESS_HOST, 5439, DATABASE, "iam:role"),
                                  iam_target={"workgroup": STAGE, "region": REGION})


def test_a_certificate_for_another_host_is_refused(login: Login, network_edge: Edge) -> None:
    """verify-full: the driver checks the certificate names the host it was given (a Redshift endpoint, never
    an address), so a man in the middle with another certificate from a trusted CA gets no credentials."""
    network_edge.expect("redshift-serverless", "get_credentials",
                        {"dbUser": IAM_USER, "dbPassword": login.password, "expiration": EXPIRES,
                         "nextRefreshTime": EXPIRES}, {"dbName": DATABASE, "workgroupName": "other"})
    other = f"other.{ACCOUNT}.{REGION}.redshift-serverless.amazonaws.com"
    with pytest.MonkeyPatch.context() as mp:
        real = socket.getaddrinfo
        mp.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: real(
            SERVERLESS_HOST if host == other else host, port, *a, **k))
        with pytest.raises(redshift_connector.InterfaceError, match="(?i)certificate|hostname"):
            redshift.connect_redshift(Endpoint(other, 5439, DATABASE, "iam:role"),
                                      iam_target={"workgroup": "other", "region": REGION})

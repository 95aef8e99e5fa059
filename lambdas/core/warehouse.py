"""The warehouse on AWS: Amazon Redshift (Serverless) through redshift-connector.

Redshift is PostgreSQL with differences. The warehouse SQL itself is written for both
(see schema.py and sync.py: no ON CONFLICT, no SKIP LOCKED; TRUNCATE, which commits
implicitly on Redshift, only clears the temporary stage at the start of a batch, when the
open transaction holds nothing but its CREATE TEMP TABLE). The differences this module handles:

- No COPY FROM STDIN. Redshift's COPY reads only from S3 (or DynamoDB, EMR, SSH), so the
  staging table is filled with parameterized multi-row INSERT statements in chunks of
  LOAD_CHUNK_ROWS rows (`load_stage_redshift`). redshift-connector's multi-row INSERT is
  about 4x its executemany; for backlogs far beyond one sync batch the next step is
  COPY from S3: write the batch as a CSV/Parquet object to the artifacts bucket and
  `COPY orders_stage FROM 's3://...' IAM_ROLE ...`.
- A different driver. redshift-connector, not psycopg2: paramstyle "format" (%s) like
  psycopg2, but it prepares every statement (extended protocol), so one statement per
  execute; rows come back as lists; a connection has no `closed` attribute; and every
  server error is a ProgrammingError (except 28000 and 23505), so a connection-level
  failure is told apart by its SQLSTATE (`is_connection_error`).
- TLS. Redshift is reached over TLS verified against the Redshift CA bundle the driver
  ships (sslmode verify-full). `ssl=False` exists for the loopback test shim only.
- The wire protocol version. The driver asks Redshift for its extended/binary result
  protocol by default, which plain PostgreSQL never speaks, so the path the tests can
  exercise would not be the one that runs on AWS. `connect_redshift` pins
  client_protocol_version to BASE_SERVER (text results, the protocol psycopg2 gets from
  Redshift): NUMERIC arrives as Decimal, TIMESTAMPTZ as a UTC-aware datetime, on
  Redshift and in the tests alike. Our result sets are report-sized, so text costs nothing.
- Timeouts. The driver's `timeout` is a socket timeout on every read, not only on
  connect: a REFRESH MATERIALIZED VIEW or a large merge running longer would fail
  half-way. It bounds the connect only; reads then wait as psycopg2's do (the Lambda
  timeout bounds a hang; TCP keepalive, on by default, notices a dead peer).
- Credentials. The sync and refresh functions log in with IAM (`iam:` references): the
  driver asks Redshift Serverless (GetCredentials) or the cluster
  (GetClusterCredentialsWithIAM) for temporary credentials for the function's own role,
  whose database user is `IAMR:<role name>`; the ops function's migrations create those
  users and grant them only what each needs (schema.py). Only ops reads the admin secret
  in Secrets Manager ({"username", "password"}, the same shape as the local secret file),
  with `read_secret`; it is never logged (the driver masks it in its own debug log) nor
  put in argv or env.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from lambdas.core.db import Endpoint, iam_user, read_secret
from lambdas.core.sync import STAGE_COLUMNS

LOAD_CHUNK_ROWS = 1_000  # 8,000 parameters per statement: far below the protocol's Int16 count and 16 MB SQL limit
BASE_SERVER_PROTOCOL = 0  # redshift_connector.config.ClientProtocolVersion.BASE_SERVER
# SQLSTATEs that mean the session is gone: class 08 (connection exception), and the
# server shutting the backend down (admin_shutdown, crash_shutdown, cannot_connect_now).
_CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")


def connect_redshift(
    endpoint: Endpoint,
    *,
    ssl: bool = True,
    application_name: str = "txpipe",
    connect_timeout: float = 10,
    read_timeout: float | None = None,
    iam_target: dict[str, str] | None = None,
) -> Any:
    """A redshift-connector connection (autocommit off) with the endpoint's secret, or IAM credentials
    for the function's role (an `iam:` reference; `iam_target` names the workgroup or cluster)."""
    import redshift_connector

    if iam_user(endpoint.secret_ref) is not None:
        credentials = iam_login(iam_target or {})
    else:
        secret = read_secret(endpoint.secret_ref)
        credentials = {"user": secret["username"], "password": secret["password"]}
    conn = redshift_connector.connect(
        host=endpoint.host, port=endpoint.port, database=endpoint.dbname, **credentials,
        ssl=ssl, timeout=connect_timeout, application_name=application_name,
        client_protocol_version=BASE_SERVER_PROTOCOL,
    )
    sock = getattr(conn, "_usock", None)  # the driver keeps its connect timeout on every later read
    if sock is not None:
        sock.settimeout(read_timeout)
    conn.autocommit = False
    return conn


def iam_login(target: dict[str, str]) -> dict[str, Any]:
    """redshift-connector's IAM settings for the function's own role (group federation: the database
    user is IAMR:<role name>, for Serverless and a provisioned cluster alike)."""
    region = target.get("region") or ""
    if target.get("workgroup"):
        return {"iam": True, "group_federation": True, "is_serverless": True,
                "serverless_work_group": target["workgroup"], "region": region}
    if target.get("cluster"):
        return {"iam": True, "group_federation": True, "cluster_identifier": target["cluster"], "region": region}
    raise RuntimeError("IAM login to Redshift needs TXPIPE_WAREHOUSE_WORKGROUP or TXPIPE_WAREHOUSE_CLUSTER")


def _insert_sql(rows: int) -> str:
    row = "(" + ", ".join(["%s"] * len(STAGE_COLUMNS)) + ")"
    return (f"INSERT INTO orders_stage ({', '.join(STAGE_COLUMNS)}) VALUES "  # noqa: S608 - fixed names, placeholders
            + ", ".join([row] * rows))


def load_stage_redshift(cur: Any, rows: Sequence[Sequence[Any]], chunk_rows: int = LOAD_CHUNK_ROWS) -> None:
    """Bulk-loads the staging table with parameterized multi-row INSERTs of up to chunk_rows rows each."""
    width = len(STAGE_COLUMNS)
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start:start + chunk_rows]
        if any(len(row) != width for row in chunk):
            raise ValueError(f"staging rows must have {width} values: {', '.join(STAGE_COLUMNS)}")
        cur.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])


def is_connection_error(exc: BaseException) -> bool:
    """True for a redshift-connector error that means the connection is unusable (retry on a new one)."""
    rc = sys.modules.get("redshift_connector")  # loaded if a redshift connection raised; no import cost otherwise
    if rc is None:
        return False
    # ConnectionError: the driver lets a reset or broken socket (a reused dead connection) through as is.
    if isinstance(exc, (rc.InterfaceError, rc.OperationalError, ConnectionError)):
        return True
    if isinstance(exc, rc.ProgrammingError):
        details = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        code = str(details.get("C", ""))
        return code.startswith("08") or code in _CONNECTION_SQLSTATES
    return False

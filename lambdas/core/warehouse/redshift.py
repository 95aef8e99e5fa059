"""The warehouse on AWS: Amazon Redshift (Serverless or a cluster) through redshift-connector.

Redshift is PostgreSQL with differences (dlt models it the same way). The warehouse SQL itself is
written for both (schema.py: no ON CONFLICT, no SKIP LOCKED). The differences this module handles:

- The bulk load. Redshift has no COPY FROM STDIN; its COPY reads S3. AWS: "We strongly recommend
  using the COPY command to load large amounts of data. Using individual INSERT statements to
  populate a table might be prohibitively slow." So with a bucket for batch files (TXPIPE_WAREHOUSE_STAGE_*)
  each batch is written as gzipped CSV to `s3://<bucket>/<prefix>orders-<hash>.csv.gz`, loaded with
  `COPY orders_batch (...) FROM '<uri>' IAM_ROLE '<role>' CSV GZIP TIMEFORMAT 'auto' NULL AS '\\0'`
  (Redshift assumes the role to read the object), merged, and the object is deleted once the
  warehouse has committed (`delete_batch_file`). The key is a hash of the batch's first and last order_id and
  its row count, so a batch re-run after a crash overwrites its own object rather than adding one.
  Without a bucket the batch table is filled with parameterized multi-row INSERTs of LOAD_CHUNK_ROWS rows
  (about 4x redshift-connector's executemany), which needs nothing but the connection.
- TRUNCATE commits the open transaction (Capabilities.truncate_commits): run_sync clears the batch table
  in a transaction of its own, before the batch's load and merge.
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
  driver asks Redshift Serverless (GetCredentials, group federation off) or the cluster
  (GetClusterCredentialsWithIAM, group federation on) for temporary credentials for the function's own role,
  whose database user is `IAMR:<role name>`; the ops function's migrations create those
  users and grant them only what each needs (schema.py). Only ops reads the admin secret
  in Secrets Manager ({"username", "password"}, the same shape as the local secret file),
  with `read_secret`; it is never logged (the driver masks it in its own debug log) nor
  put in argv or env. The S3 client (boto3, built lazily) signs with the function's role.
- Users and grants (`grant`). The functions' users are named by the stack (TXPIPE_WAREHOUSE_SYNC_USER and
  _REFRESH_USER, IAMR:<role>); the migration creates them, grants them access.redshift_access's privileges,
  re-creates the views as the refresh user (only an owner may refresh a view, and Redshift cannot hand one
  over), and gives the tables their distribution and sort keys (access.redshift_keys). Where nothing names
  the users (the test shim, which is PostgreSQL), none of that runs.
- The refresh. Each REFRESH MATERIALIZED VIEW is a transaction of its own (Capabilities.refresh_commits), and
  there is no CONCURRENTLY (readers see the old contents while it runs, by snapshot isolation).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from lambdas.core import access
from lambdas.core.db import Endpoint, iam_user, read_secret
from lambdas.core.warehouse import BATCH_COLUMNS, ENDPOINT_SETTINGS, BatchFile, Capabilities, Warehouse

log = logging.getLogger(__name__)

LOAD_CHUNK_ROWS = 1_000  # 8,000 parameters per statement: far below the protocol's Int16 count and 16 MB SQL limit
BASE_SERVER_PROTOCOL = 0  # redshift_connector.config.ClientProtocolVersion.BASE_SERVER
# SQLSTATEs that mean the session is gone: class 08 (connection exception), and the
# server shutting the backend down (admin_shutdown, crash_shutdown, cannot_connect_now).
_CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# Where the batch files go, set by the stack under the names it has always used (absent: the multi-row INSERT
# load).
BATCH_FILE_VARIABLES = ("TXPIPE_WAREHOUSE_STAGE_BUCKET", "TXPIPE_WAREHOUSE_STAGE_PREFIX", "TXPIPE_WAREHOUSE_COPY_ROLE")
# The functions' database users (IAMR:<role name>), set by the stack on the ops function: see `grant`.
USER_VARIABLES = ("TXPIPE_WAREHOUSE_SYNC_USER", "TXPIPE_WAREHOUSE_REFRESH_USER")


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
        # verify-full named explicitly: when the mode is left to the driver, it only warns on a certificate
        # that names another host.
        ssl=ssl, sslmode="verify-full", timeout=connect_timeout, application_name=application_name,
        client_protocol_version=BASE_SERVER_PROTOCOL,
    )
    sock = getattr(conn, "_usock", None)  # the driver keeps its connect timeout on every later read
    if sock is not None:
        sock.settimeout(read_timeout)
    conn.autocommit = False
    return conn


def iam_login(target: dict[str, str]) -> dict[str, Any]:
    """redshift-connector's IAM settings for the function's own role; its database user is IAMR:<role name>.

    Serverless: GetCredentials on the `redshift-serverless` API, which the driver calls only with group
    federation off (with it on, it calls GetClusterCredentialsWithIAM, an operation only the provisioned
    `redshift` API has: AttributeError before any network call). A provisioned cluster: group federation on,
    GetClusterCredentialsWithIAM. Both map an IAM role to the user IAMR:<role name>:
    https://docs.aws.amazon.com/redshift-serverless/latest/APIReference/API_GetCredentials.html
    https://docs.aws.amazon.com/redshift/latest/APIReference/API_GetClusterCredentialsWithIAM.html"""
    region = target.get("region") or ""
    if target.get("workgroup"):
        return {"iam": True, "group_federation": False, "is_serverless": True,
                "serverless_work_group": target["workgroup"], "region": region}
    if target.get("cluster"):
        return {"iam": True, "group_federation": True, "cluster_identifier": target["cluster"], "region": region}
    raise RuntimeError("IAM login to Redshift needs TXPIPE_WAREHOUSE_WORKGROUP or TXPIPE_WAREHOUSE_CLUSTER")


def _insert_sql(rows: int) -> str:
    row = "(" + ", ".join(["%s"] * len(BATCH_COLUMNS)) + ")"
    return (f"INSERT INTO orders_batch ({', '.join(BATCH_COLUMNS)}) VALUES "  # noqa: S608 - fixed names, placeholders
            + ", ".join([row] * rows))


def _check_width(rows: Sequence[Sequence[Any]]) -> None:
    width = len(BATCH_COLUMNS)
    if any(len(row) != width for row in rows):
        raise ValueError(f"batch rows must have {width} values: {', '.join(BATCH_COLUMNS)}")


def insert_batch(cur: Any, rows: Sequence[Sequence[Any]], chunk_rows: int = LOAD_CHUNK_ROWS) -> None:
    """Fills the batch table with parameterized multi-row INSERTs of up to chunk_rows rows each."""
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start:start + chunk_rows]
        _check_width(chunk)
        cur.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])


# --------------------------------------------------------------------------- the batch files in S3, and COPY

# What may go into the COPY statement as literals (COPY takes no bind parameters): S3's bucket naming rules,
# the "safe" key characters (no quote, no backslash), an IAM role ARN in any partition.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*()/-]{0,512}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
# CSV with every field quoted (Redshift and PostgreSQL then agree on commas, quotes, spaces and empty strings);
# timestamps in UTC as ISO 8601 with microseconds, a form TIMEFORMAT 'auto' recognizes; NULL AS '\0': only a
# field of one NUL byte is NULL, and no value of ours can be one (the default, \N, is a valid order_id).
COPY_OPTIONS = "CSV GZIP TIMEFORMAT 'auto' NULL AS '\\0'"
GZIP_LEVEL = 1  # the sync's CPU is the scarce part; level 1 is ~3x faster than 6 for ~10% more bytes (in-region)


@dataclass(frozen=True)
class S3BatchFiles:
    """Where the Redshift warehouse writes batches for COPY, and the role Redshift reads them with."""

    bucket: str
    prefix: str
    role_arn: str

    def __post_init__(self) -> None:
        for name, value, pattern in (("TXPIPE_WAREHOUSE_STAGE_BUCKET", self.bucket, _BUCKET),
                                     ("TXPIPE_WAREHOUSE_STAGE_PREFIX", self.prefix, _PREFIX),
                                     ("TXPIPE_WAREHOUSE_COPY_ROLE", self.role_arn, _ROLE_ARN)):
            if not pattern.fullmatch(value):
                raise ValueError(f"{name} {value!r} is not a valid value: it goes into the COPY statement as is")

    def key(self, rows: Sequence[Sequence[Any]]) -> str:
        """The batch's object key: a hash of its first and last order_id and its row count, so the same batch
        run again (after a crash) writes the same key instead of leaving a second object. Every key has the
        same length, so none is a prefix of another: COPY FROM 's3://b/k' loads every object under k."""
        identity = json.dumps([rows[0][0], rows[-1][0], len(rows)]).encode()
        return f"{self.prefix}orders-{hashlib.sha256(identity).hexdigest()[:40]}.csv.gz"


def copy_sql(uri: str, role_arn: str) -> str:
    """The COPY of one batch file into orders_batch (uri and role_arn already checked by S3BatchFiles)."""
    return (f"COPY orders_batch ({', '.join(BATCH_COLUMNS)}) FROM '{uri}' IAM_ROLE '{role_arn}' "
            + COPY_OPTIONS)


def _timestamp(value: datetime) -> str:
    """An aware instant as UTC ISO 8601 with microseconds ("2024-05-01T12:00:00.000000Z")."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a batch's timestamp must carry its time zone")
    return (value - offset).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _csv_value(value: Any) -> str:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # never an exponent ("1E+2"), which COPY would not read as a decimal
    if value is None:
        raise ValueError("the batch table takes no NULL: every column of an order is NOT NULL")
    return str(value)


def _column_text(values: Sequence[Any]) -> Sequence[str]:
    """One column of the batch as text. Orders of one request share their accepted_at, a store batch its
    stored_at, and prices come from a menu: in a column of one type each distinct value is formatted once
    (formatting timestamps was most of the encoding's time)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return values
    if kinds == {int}:
        return list(map(str, values))
    if len(kinds) > 1:  # mixed types: no cache (1 and Decimal("1.00") are equal keys but format differently)
        return [_csv_value(v) for v in values]
    cache: dict[Any, str] = {}
    return [cache[v] if v in cache else cache.setdefault(v, _csv_value(v)) for v in values]


def batch_csv(rows: Sequence[Sequence[Any]]) -> bytes:
    """The batch as gzipped CSV, every field quoted (a quote inside doubled), LF line ends; byte-identical for
    the same rows. What csv.writer(quoting=QUOTE_ALL) writes, built with joins: half its time."""
    _check_width(rows)
    columns = []
    for column in zip(*rows, strict=True):
        text = _column_text(column)
        if any('"' in value for value in text):
            text = [value.replace('"', '""') for value in text]
        columns.append(text)
    lines = '"\n"'.join('","'.join(row) for row in zip(*columns, strict=True))
    return gzip.compress(f'"{lines}"\n'.encode() if rows else b"", compresslevel=GZIP_LEVEL, mtime=0)


class RedshiftWarehouse(Warehouse):
    """Amazon Redshift: redshift-connector; COPY from S3 with a bucket for batch files, multi-row INSERTs
    without one."""

    kind = "redshift"
    capabilities = Capabilities(copy_text=False, truncate_commits=True, bills_by_wake=True, refresh_commits=True)
    settings = (*ENDPOINT_SETTINGS, *BATCH_FILE_VARIABLES, "TXPIPE_WAREHOUSE_SSL", "TXPIPE_WAREHOUSE_WORKGROUP",
                "TXPIPE_WAREHOUSE_CLUSTER", "AWS_REGION", "AWS_DEFAULT_REGION")

    def __init__(self, endpoint: Endpoint | None = None, *, batch_files: S3BatchFiles | None = None, s3: Any = None,
                 ssl: bool = True, iam_target: dict[str, str] | None = None,
                 application_name: str = "txpipe-warehouse", insert_chunk_rows: int = LOAD_CHUNK_ROWS) -> None:
        self.endpoint = endpoint  # None: a loader only (the caller brings its own connection)
        self.batch_files = batch_files
        self._s3 = s3
        self.ssl = ssl
        self.iam_target = iam_target
        self.application_name = application_name
        self.insert_chunk_rows = insert_chunk_rows

    @property
    def s3(self) -> Any:
        """The S3 client: the injected one, else boto3's, built on first use (never at import)."""
        if self._s3 is None:
            import boto3  # lazy: ~0.3 s to import, and only a load through S3 needs it

            self._s3 = boto3.client("s3")
        return self._s3

    @classmethod
    def from_env(cls, variables: Mapping[str, str]) -> RedshiftWarehouse:
        """TLS unless TXPIPE_WAREHOUSE_SSL=false (a loopback host only: the test shim), IAM login for the
        workgroup or cluster, and batch files in S3 when TXPIPE_WAREHOUSE_STAGE_BUCKET is set (then
        TXPIPE_WAREHOUSE_COPY_ROLE too; TXPIPE_WAREHOUSE_STAGE_PREFIX may be empty)."""
        endpoint = Endpoint.from_env("warehouse", dict(variables))
        value = variables.get("TXPIPE_WAREHOUSE_SSL", "true").strip().lower()
        if value not in ("true", "false"):
            raise RuntimeError("TXPIPE_WAREHOUSE_SSL must be true or false")
        ssl = value == "true"
        # Plain text exists for the loopback test shim only: credentials never cross a network without TLS.
        if not ssl and endpoint.host not in LOOPBACK_HOSTS:
            raise RuntimeError("TXPIPE_WAREHOUSE_SSL=false is allowed only for a loopback warehouse host "
                               "(the test shim)")
        target = {"workgroup": variables.get("TXPIPE_WAREHOUSE_WORKGROUP", ""),
                  "cluster": variables.get("TXPIPE_WAREHOUSE_CLUSTER", ""),
                  "region": variables.get("AWS_REGION") or variables.get("AWS_DEFAULT_REGION", "")}
        batch_files = None
        bucket, prefix, role = (variables.get(k, "") for k in BATCH_FILE_VARIABLES)
        if bucket:
            if not role:
                raise RuntimeError("TXPIPE_WAREHOUSE_STAGE_BUCKET is set but TXPIPE_WAREHOUSE_COPY_ROLE is not: "
                                   "Redshift's COPY needs the role it reads the batch files with")
            try:
                batch_files = S3BatchFiles(bucket, prefix, role)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from None
        return cls(endpoint, batch_files=batch_files, ssl=ssl, iam_target=target)

    def connect(self) -> Any:
        if self.endpoint is None:
            raise RuntimeError("this RedshiftWarehouse has no endpoint to connect to")
        return connect_redshift(self.endpoint, ssl=self.ssl, application_name=self.application_name,
                                iam_target=self.iam_target)

    def grant(self, conn: Any, variables: Mapping[str, str]) -> None:
        """The users the stack names (IAMR:<role>), their grants and the views' owner, then the tables' keys.
        Nothing where it names none (nothing logs in with IAM: the shim in the tests)."""
        sync_user, refresh_user = (variables.get(name, "") for name in USER_VARIABLES)
        if sync_user and refresh_user:
            access.redshift_access(conn, sync_user, refresh_user)
            access.redshift_keys(conn)

    def load_batch(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> BatchFile | None:
        """With a bucket: the batch to S3 as gzipped CSV, then COPY. Without: multi-row INSERTs."""
        if self.batch_files is None:
            insert_batch(cur, rows, self.insert_chunk_rows)
            return None
        if not rows:
            return None
        key = self.batch_files.key(rows)
        self.s3.put_object(Bucket=self.batch_files.bucket, Key=key, Body=batch_csv(rows),
                           ContentType="application/gzip")
        batch_file = BatchFile(f"s3://{self.batch_files.bucket}/{key}")
        try:
            cur.execute(copy_sql(batch_file.uri, self.batch_files.role_arn))
        except Exception:
            self._delete(batch_file, "its COPY failed")  # the warehouse never took it: nothing will need it
            raise
        return batch_file

    def delete_batch_file(self, batch_file: BatchFile) -> None:
        """Deletes the batch's object once the warehouse has committed it."""
        self._delete(batch_file, "the batch is committed")

    def _delete(self, batch_file: BatchFile, why: str) -> None:
        # A failed delete does not fail the sync: the batch is (or was never) in the warehouse either way,
        # and failing here would stop the pipeline over a leftover object. It is logged; a lifecycle rule
        # on the prefix expires what is left (and a re-run of the same batch overwrites its own key).
        bucket, _, key = batch_file.uri.removeprefix("s3://").partition("/")
        try:
            self.s3.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - reported, see above
            log.warning("could not delete batch_file %s (%s): %s", batch_file.uri, why, exc)

    @staticmethod
    def is_connection_error(exc: BaseException) -> bool:
        """The driver's lost connection, told by its error class or SQLSTATE (the module's is_connection_error)."""
        return is_connection_error(exc)


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

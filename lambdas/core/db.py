"""Database endpoints and connections, resolved from the function's environment.

The same variables are set by the local runtime and by CloudFormation:
TXPIPE_<NAME>_HOST / _PORT / _DB / _SECRET, where _SECRET says how to log in:
- `file:/path`: a JSON secret {"username", "password"} in a 0600 file (the local target);
- an AWS Secrets Manager ARN of such a secret (on AWS, the ops function only: the admin);
- `iam:<user>`: IAM database authentication as that database user, with a 15-minute token
  the function's own role signs at connect (RDS; see warehouse.py for Redshift). No
  password exists anywhere, so a function that logs in this way holds no secret at all.
Credentials never appear in an environment variable, a command line or a log line.

Connections are cached per thread: a warm Lambda reuses its one connection, and
the local runtime, which runs handlers on several threads, never shares one.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_local = threading.local()


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    dbname: str
    secret_ref: str = field(repr=False)

    @classmethod
    def from_env(cls, name: str, env: dict[str, str] | None = None) -> Endpoint:
        env = dict(os.environ) if env is None else env
        prefix = f"TXPIPE_{name.upper()}_"
        missing = [k for k in ("HOST", "PORT", "DB", "SECRET") if not env.get(prefix + k)]
        if missing:
            raise RuntimeError(f"{name} database is not configured: set {', '.join(prefix + k for k in missing)}")
        return cls(env[prefix + "HOST"], int(env[prefix + "PORT"]), env[prefix + "DB"], env[prefix + "SECRET"])

    def to_env(self, name: str) -> dict[str, str]:
        prefix = f"TXPIPE_{name.upper()}_"
        return {prefix + "HOST": self.host, prefix + "PORT": str(self.port), prefix + "DB": self.dbname,
                prefix + "SECRET": self.secret_ref}


NAMESPACE_PREFIX = "redshift-serverless:namespace/"


def read_secret(ref: str) -> dict[str, Any]:
    """Resolves a secret reference to its JSON document: a file:/path, a Secrets Manager ARN, or
    redshift-serverless:namespace/<name>, the admin secret that namespace manages (and rotates) itself,
    whose ARN only the namespace knows (GetNamespace: adminPasswordSecretArn)."""
    if ref.startswith("file:"):
        return json.loads(Path(ref.removeprefix("file:")).read_text())
    if ref.startswith(("arn:", NAMESPACE_PREFIX)):
        import boto3  # lazy: only the AWS target needs it, and it costs ~0.3 s to import

        if ref.startswith(NAMESPACE_PREFIX):
            namespace = boto3.client("redshift-serverless").get_namespace(
                namespaceName=ref.removeprefix(NAMESPACE_PREFIX))["namespace"]
            ref = namespace.get("adminPasswordSecretArn") or ""
            if not ref:
                raise RuntimeError("the Redshift Serverless namespace manages no admin secret (ManageAdminPassword)")
        value = boto3.client("secretsmanager").get_secret_value(SecretId=ref)["SecretString"]
        return json.loads(value)
    raise RuntimeError("secret reference must be an ARN, redshift-serverless:namespace/<name> or file:/path")


IAM_PREFIX = "iam:"


def iam_user(ref: str) -> str | None:
    """The database user of an `iam:<user>` reference, else None."""
    return ref.removeprefix(IAM_PREFIX) if ref.startswith(IAM_PREFIX) else None


def rds_auth_token(endpoint: Endpoint, user: str, client: Any = None) -> str:
    """An RDS IAM authentication token: a SigV4-signed URL, made locally (no AWS call), valid 15 minutes."""
    if client is None:
        import boto3

        client = boto3.client("rds")
    return client.generate_db_auth_token(DBHostname=endpoint.host, Port=endpoint.port, DBUsername=user)


def connect_postgres(endpoint: Endpoint, *, autocommit: bool = False, application_name: str = "txpipe") -> Any:
    import psycopg2

    user = iam_user(endpoint.secret_ref)
    if user is not None:
        # RDS accepts IAM tokens over TLS only.
        credentials = {"user": user, "password": rds_auth_token(endpoint, user), "sslmode": "require"}
    else:
        secret = read_secret(endpoint.secret_ref)
        credentials = {"user": secret["username"], "password": secret["password"]}
    conn = psycopg2.connect(
        host=endpoint.host, port=endpoint.port, dbname=endpoint.dbname, **credentials,
        application_name=application_name, connect_timeout=10,
        # A network that drops packets is noticed in about 30 s rather than at TCP's two hours.
        keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=4,
    )
    conn.autocommit = autocommit
    return conn


def cached_connection(key: tuple[str, Any], factory: Any) -> Any:
    """A per-thread connection for (database name, endpoint), reopened if the server closed it."""
    conns: dict[tuple[str, Any], Any] = _local.__dict__.setdefault("conns", {})
    conn = conns.get(key)
    if conn is not None and getattr(conn, "closed", 0):
        conn = None
    if conn is None:
        conn = conns[key] = factory()
    return conn


def drop_cached(name: str) -> None:
    """Forgets this thread's connections to that database after an error that may have broken one."""
    conns: dict[tuple[str, Any], Any] = _local.__dict__.get("conns", {})
    for key in [k for k in conns if k[0] == name]:
        conn = conns.pop(key)
        with contextlib.suppress(Exception):  # it is being discarded either way
            conn.close()

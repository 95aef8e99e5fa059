"""Database endpoints and connections, resolved from the function's environment.

The same variables are set by the local runtime and by CloudFormation:
TXPIPE_<NAME>_HOST / _PORT / _DB / _SECRET, where _SECRET is a reference to a
JSON secret holding {"username", "password"}: an AWS Secrets Manager ARN, or
`file:/path` on the local target (a 0600 file under $TXPIPE_HOME). Credentials
never appear in an environment variable, a command line or a log line.

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


def read_secret(ref: str) -> dict[str, Any]:
    """Resolves a secret reference to its JSON document."""
    if ref.startswith("file:"):
        return json.loads(Path(ref.removeprefix("file:")).read_text())
    if ref.startswith("arn:"):
        import boto3  # lazy: only the AWS target needs it, and it costs ~0.3 s to import

        value = boto3.client("secretsmanager").get_secret_value(SecretId=ref)["SecretString"]
        return json.loads(value)
    raise RuntimeError("secret reference must be an ARN or file:/path")


def connect_postgres(endpoint: Endpoint, *, autocommit: bool = False, application_name: str = "txpipe") -> Any:
    import psycopg2

    secret = read_secret(endpoint.secret_ref)
    conn = psycopg2.connect(
        host=endpoint.host, port=endpoint.port, dbname=endpoint.dbname,
        user=secret["username"], password=secret["password"],
        application_name=application_name, connect_timeout=10,
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

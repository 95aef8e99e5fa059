"""The local databases, provisioned as RDS and CloudFormation provision them on AWS.

Run by `deploy` with the server's superuser, which nothing at run time ever holds:

- one login user per function and one for the queue's pollers, each with a generated
  password kept in its own 0600 file (secrets/<user>.json);
- `txpipe_ops` owns the three databases and everything in them: it runs the migrations,
  which grant each function only what it needs (lambdas/core/schema.py, `ACCESS`);
- the orders queue (the SQS stand-in) and its grants: ingest sends, store delays and
  dead-letters, the pollers receive and delete.

Idempotent: users and grants that exist are left as they are, passwords are re-set from
their files, and objects made by an earlier release as the superuser are handed to ops.
"""

from __future__ import annotations

import os
from typing import Any

from lambdas.core.reasons import one_line
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.state import DATABASES, QUEUE_NAME, SUPERUSER, LocalState

OWNER = "txpipe_ops"
# Privileges on the queue table, by user (the owner, ops, has all: dlq list/redrive/purge, status).
QUEUE_GRANTS = (
    "GRANT INSERT ON queue_messages TO txpipe_ingest",
    "GRANT USAGE ON SEQUENCE queue_messages_id_seq TO txpipe_ingest",
    "GRANT SELECT, UPDATE ON queue_messages TO txpipe_store",
    "GRANT SELECT, UPDATE, DELETE ON queue_messages TO txpipe_esm",
)


def provision(state: LocalState) -> str:
    """Creates what is missing; returns what it did, for deploy's table."""
    import psycopg2
    from psycopg2 import sql

    from lambdas.core.db import Endpoint, connect_postgres

    def admin(database: str) -> Any:
        return connect_postgres(Endpoint("127.0.0.1", state.pg_port, database, f"file:{state.secret_file}"),
                                autocommit=True)

    done: list[str] = []
    try:
        conn = admin("postgres")
    except psycopg2.OperationalError as exc:
        raise TxpipeError(f"cannot reach the local PostgreSQL server: {one_line(exc)}",
                          hint="run txpipe deploy again; txpipe status shows the server") from None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles")
            existing = {row[0] for row in cur.fetchall()}
            for role in state.roles():
                verifier = scram_verifier(state.role_secret(role)["password"])
                verb = "ALTER" if role in existing else "CREATE"
                cur.execute(sql.SQL(f"{verb} ROLE {{}} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s")
                            .format(sql.Identifier(role)), (verifier,))
                if role not in existing:
                    done.append(f"user {role}")
            # ops hands the materialized views to the refresh user, which it may do as a member of it.
            cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier("txpipe_refresh"), sql.Identifier(OWNER)))
            cur.execute("SELECT datname FROM pg_database")
            present = {row[0] for row in cur.fetchall()}
            for database in DATABASES.values():
                if database not in present:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
                                                                             sql.Identifier(OWNER)))
                    done.append(f"database {database}")
                else:
                    cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                               sql.Identifier(OWNER)))
    except psycopg2.Error as exc:
        raise TxpipeError(f"could not provision the local databases: {one_line(exc)}") from None
    finally:
        conn.close()
    for database in DATABASES.values():
        _adopt(admin(database), sql)
    _queue(state)
    return f"created {', '.join(done)}" if done else "present"


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677), computed here as
    psql's \\password does, so the password itself never reaches the server, its logs or its catalog."""
    import base64
    import hashlib
    import hmac

    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def _adopt(conn: Any, sql: Any) -> None:
    """Hands to ops the tables, views and sequences an earlier release created as the superuser."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = %s AND c.relkind IN ('r', 'm', 'v')""",
                (SUPERUSER,))
            for name, kind in cur.fetchall():
                what = {"r": "TABLE", "m": "MATERIALIZED VIEW", "v": "VIEW"}[kind]
                # Sequences owned by a table's column follow the table.
                cur.execute(sql.SQL(f"ALTER {what} {{}} OWNER TO {{}}").format(sql.Identifier(name),
                                                                              sql.Identifier(OWNER)))
    finally:
        conn.close()


def _queue(state: LocalState) -> None:
    """The orders queue table, created by its owner, and each user's grants on it."""
    from lambdas.core.queue import PgQueue

    queue = PgQueue.from_endpoint(state.endpoint("queue", role=OWNER), QUEUE_NAME)
    try:
        queue.create()
        queue.run_statements(QUEUE_GRANTS)
    finally:
        queue.close()

"""Shared fixtures: one real PostgreSQL server per test session, owned by txpipe's own code.

The server holds the three local databases (OLTP, warehouse, queue), migrated once (the
warehouse as ops' migrate does it: tests/support/warehouse.py); `clean` empties their tables
before a test. Tests that need the whole local target (runtime and all) deploy it themselves
under a temporary TXPIPE_HOME. Every test's AWS calls are held to what lambdas/functions.py
declares (`declared_aws_calls`, autouse: tests/support/aws_calls.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from lambdas.core import schema
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.queue import PgQueue
from tests.support.warehouse import migrate_warehouse
from txpipe_cli.local.pg import PgServer, find_bindir, server_user
from txpipe_cli.local.target import free_port

EVENTS = Path(__file__).parent / "events"
DATABASES = {"oltp": "test_oltp", "warehouse": "test_warehouse", "queue": "test_queue"}


@dataclass
class Databases:
    endpoints: dict[str, Endpoint]

    def connect(self, name: str, autocommit: bool = False) -> Any:
        return connect_postgres(self.endpoints[name], autocommit=autocommit)

    def env(self) -> dict[str, str]:
        """The handler environment pointing at these databases (as the runtime sets it)."""
        env: dict[str, str] = {"TXPIPE_QUEUE_URL": "pgqueue://orders", "TXPIPE_WAREHOUSE_KIND": "postgres"}
        for name, endpoint in self.endpoints.items():
            env.update(endpoint.to_env(name))
        return env


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[tuple[PgServer, str]]:
    # /var/tmp, not pytest's tmp_path: that is 0700 under root and the server runs unprivileged.
    root = Path(tempfile.mkdtemp(prefix="txpipe-test-pg-", dir="/var/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 - the unprivileged server user must reach its data under it
    secret = root / "secret.json"
    password = "test-" + os.urandom(8).hex()
    secret.write_text(json.dumps({"username": "txpipe", "password": password}))
    os.chmod(secret, 0o600)
    server = PgServer(root / "server", free_port(), server_user(), find_bindir())
    server.init("txpipe", password)
    server.start()
    try:
        yield server, f"file:{secret}"
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def databases(pg_server: tuple[PgServer, str]) -> Databases:
    server, secret_ref = pg_server
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", secret_ref), autocommit=True)
    with admin.cursor() as cur:
        for db in DATABASES.values():
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    admin.close()
    dbs = Databases({name: Endpoint("127.0.0.1", server.port, db, secret_ref) for name, db in DATABASES.items()})
    conn = dbs.connect("oltp")
    schema.migrate(conn, schema.OLTP_MIGRATIONS)
    conn.close()
    conn = dbs.connect("warehouse")
    migrate_warehouse(conn, "postgres")  # as ops' migrate does it: its indexes and grants, the population
    conn.close()
    PgQueue.from_endpoint(dbs.endpoints["queue"], "orders").create()
    return dbs


@pytest.fixture
def clean(databases: Databases) -> Databases:
    """Empty tables (reference data kept) and materialized views refreshed to empty."""
    truncations = {
        "oltp": "TRUNCATE outbox, orders, rejected_orders, customers CASCADE",
        "warehouse": "TRUNCATE orders_fact, sync_runs, view_refreshes",
        "queue": "TRUNCATE queue_messages",
    }
    for name, statement in truncations.items():
        conn = databases.connect(name, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(statement)
            if name == "warehouse":
                cur.execute("REFRESH MATERIALIZED VIEW sales_by_state")
                cur.execute("REFRESH MATERIALIZED VIEW state_sales")
        conn.close()
    return databases


@pytest.fixture
def handler_env(clean: Databases, monkeypatch: pytest.MonkeyPatch) -> Databases:
    """Handlers in this process see the test databases; cached connections are dropped after."""
    from lambdas.core import db, env

    for key, value in clean.env().items():
        monkeypatch.setenv(key, value)
    env.reset_queues()
    yield clean
    db.drop_cached("oltp")
    db.drop_cached("warehouse")
    env.reset_queues()


@pytest.fixture(autouse=True)
def declared_aws_calls() -> Iterator[Any]:
    """Every test: each AWS call a function's handler makes must be one lambdas/functions.py declares for it
    (tests/support/aws_calls.py), since that declaration is what the template's network routes are checked against."""
    from tests.support.aws_calls import recording

    with recording() as recorder:
        yield recorder
    assert not recorder.violations, "; ".join(sorted(set(recorder.violations)))

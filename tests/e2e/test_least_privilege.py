"""Each local function's database user can do its job and nothing past it (the grants in
lambdas/core/schema.py and txpipe_cli/local/provision.py), checked as each user against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from lambdas.core.db import connect_postgres
from tests.support.local_cli import Cli, local_home


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-privilege") as cli:
        yield cli


def attempt(cli: Cli, user: str, database: str, statement: str) -> str:
    """'ok', or the SQLSTATE the server answered (42501: insufficient privilege)."""
    conn = connect_postgres(cli.state.endpoint(database, role=user))
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return "ok"
    except psycopg2.Error as exc:
        return exc.pgcode or type(exc).__name__
    finally:
        conn.rollback()
        conn.close()


DENIED = [
    ("txpipe_ingest", "oltp", "SELECT * FROM orders"),
    ("txpipe_ingest", "queue", "SELECT * FROM queue_messages"),
    ("txpipe_ingest", "queue", "DELETE FROM queue_messages"),
    ("txpipe_store", "oltp", "DELETE FROM outbox"),
    ("txpipe_store", "oltp", "UPDATE customers SET state = 'TX'"),
    ("txpipe_store", "queue", "DELETE FROM queue_messages"),
    ("txpipe_store", "warehouse", "SELECT * FROM orders_fact"),
    ("txpipe_sync", "oltp", "INSERT INTO customers VALUES (1, 'TX', 'x')"),
    ("txpipe_sync", "oltp", "UPDATE orders SET qty = 2"),
    ("txpipe_sync", "warehouse", "DELETE FROM orders_fact"),
    ("txpipe_sync", "warehouse", "REFRESH MATERIALIZED VIEW state_sales"),
    ("txpipe_refresh", "oltp", "SELECT * FROM orders"),
    ("txpipe_refresh", "warehouse", "INSERT INTO sync_runs VALUES (now(), now(), 0, 0)"),
    ("txpipe_refresh", "warehouse", "CREATE TABLE x (a int)"),
    ("txpipe_esm", "queue", "INSERT INTO queue_messages (queue, body) VALUES ('orders', 'x')"),
    ("txpipe_esm", "oltp", "SELECT * FROM orders"),
]
ALLOWED = [
    ("txpipe_ingest", "queue", "INSERT INTO queue_messages (queue, body) VALUES ('other', 'x')"),
    ("txpipe_store", "oltp", "SELECT customer_id FROM customers"),
    ("txpipe_sync", "oltp", "SELECT order_id FROM outbox FOR UPDATE SKIP LOCKED"),
    ("txpipe_sync", "warehouse", "SELECT count(*) FROM orders_fact"),
    ("txpipe_refresh", "warehouse", "REFRESH MATERIALIZED VIEW state_sales"),
    ("txpipe_esm", "queue", "DELETE FROM queue_messages WHERE queue = 'nothing'"),
]


@pytest.mark.parametrize(("user", "database", "statement"), DENIED)
def test_a_user_is_refused_what_its_function_does_not_do(cli: Cli, user: str, database: str, statement: str) -> None:
    assert attempt(cli, user, database, statement) == "42501"


@pytest.mark.parametrize(("user", "database", "statement"), ALLOWED)
def test_a_user_may_do_its_functions_job(cli: Cli, user: str, database: str, statement: str) -> None:
    assert attempt(cli, user, database, statement) == "ok"


def test_no_runtime_user_is_a_superuser_or_may_create_roles(cli: Cli) -> None:
    rows = cli.sql("oltp", "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                           "WHERE rolname LIKE 'txpipe\\_%%'")
    assert {r[0] for r in rows} == {"txpipe_ingest", "txpipe_store", "txpipe_sync", "txpipe_refresh", "txpipe_ops",
                                    "txpipe_esm"}
    assert all(r[1:] == (False, False, False) for r in rows)

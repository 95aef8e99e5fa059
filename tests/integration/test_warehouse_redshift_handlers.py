"""The sync, ops and refresh functions with TXPIPE_WAREHOUSE_KIND=redshift, through the shim.

The handlers see the session's OLTP database and queue and the Redshift-path warehouse (fixtures from
tests/integration/conftest.py): env picks the Redshift warehouse backend, connects with redshift-connector,
and retries once on a dropped connection.
"""

from __future__ import annotations

import json

import pytest
import redshift_connector

from lambdas import ops, refresh, sync
from lambdas.core import env
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse, is_connection_error
from tests.integration.helpers import order, store_directly
from tests.support.redshift import RS_DB, RS_ROLE, SALES, Redshift, fact_rows
from txpipe_cli.local.events import LambdaContext, scheduled_event

# -- the handlers with TXPIPE_WAREHOUSE_KIND=redshift -----------------------------------------------------

def test_env_picks_the_redshift_driver_and_loader(rs_handler_env, monkeypatch):
    """With kind redshift, env.warehouse() is a redshift-connector connection and the loader is the INSERT one."""
    backend = env.warehouse_backend()
    assert isinstance(backend, RedshiftWarehouse) and backend.batch_files is None  # no bucket: the INSERT load
    assert backend.ssl is False and backend.endpoint == rs_handler_env.endpoint
    conn = env.warehouse()
    assert isinstance(conn, redshift_connector.Connection)
    assert env.warehouse() is conn  # cached per thread
    monkeypatch.setenv("TXPIPE_WAREHOUSE_KIND", "postgres")
    assert isinstance(env.warehouse_backend(), PostgresWarehouse)


@pytest.mark.parametrize(("setting", "message"), [
    ({"TXPIPE_WAREHOUSE_KIND": "snowflake"}, "not supported"),
    ({"TXPIPE_WAREHOUSE_SSL": "maybe"}, "true or false"),
    ({"TXPIPE_WAREHOUSE_HOST": "10.0.0.5"}, "loopback"),
])
def test_env_refuses_bad_warehouse_settings(rs_handler_env, monkeypatch, setting, message):
    """An unknown kind, a malformed SSL flag, or plain text to a non-loopback host is refused before connecting."""
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    connections = rs_handler_env.shim.connections
    with pytest.raises(RuntimeError, match=message):
        env.warehouse()
    assert rs_handler_env.shim.connections == connections


def test_sync_handler_with_kind_redshift(handler_env, rs_handler_env, monkeypatch):
    """The real sync function, kind redshift, drains the outbox into the Redshift-path warehouse in batches."""
    store_directly(handler_env, [order(f"h-{i:03d}", 1 + i % 4) for i in range(30)])
    monkeypatch.setenv("TXPIPE_SYNC_BATCH_ROWS", "7")
    connections = rs_handler_env.shim.connections
    result = sync.handler(scheduled_event("sync"), LambdaContext("sync", 60))
    assert (result["synced"], result["pending"], result["batches"]) == (30, 0, 5)
    assert len(fact_rows(rs_handler_env)) == 30
    assert rs_handler_env.shim.connections == connections + 1  # one warehouse connection, through the shim
    assert sync.handler(scheduled_event("sync"), None)["synced"] == 0
    assert rs_handler_env.shim.connections == connections + 1  # reused while warm


def test_ops_and_refresh_handlers_with_kind_redshift(handler_env, rs_handler_env):
    """migrate, refresh, report, sla_report and status run through the ops and refresh functions, kind redshift."""
    dbs = handler_env
    migrated = ops.handler({"action": "migrate"}, None)
    assert migrated == {"applied": {"oltp": [], "warehouse": []}, "state_population_rows": 51}
    store_directly(dbs, [order(oid, c, p, q, price) for oid, c, p, q, price in SALES])
    assert sync.handler(scheduled_event("sync"), None)["synced"] == len(SALES)
    assert refresh.handler(scheduled_event("refresh"), None) == {"refreshed": ["sales_by_state", "state_sales"]}
    answer = ops.handler({"action": "report", "states": ["TX"]}, None)
    assert answer["freshness"]["views_refreshed_at"] and answer["freshness"]["awaiting_refresh"] == 0
    report = answer["states"][0]
    assert (report["total_pizzas"], report["gross_sales"], report["unique_customers"]) == (13, 122.0, 2)
    assert report["top_pizzas"][0]["pizza_type"] == "meat lover"
    assert ops.handler({"action": "report", "states": ["XX"]}, None)["error"].startswith("unknown state")
    sla = ops.handler({"action": "sla_report", "sla_seconds": 900}, None)
    assert (sla["synced"], sla["pending"], sla["breaches"]) == (len(SALES), 0, 0)
    status = ops.handler({"action": "status"}, None)
    assert status["last_sync"]["synced"] == len(SALES)
    assert status["outbox_backlog"] == 0
    json.dumps([migrated, report, sla, status])  # the ops function answers in JSON


def _terminate_warehouse_sessions(rs: Redshift) -> int:
    """Ends the role's sessions on the Redshift-path database, waiting until each backend has exited."""
    rows = rs.query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
                    (RS_ROLE, RS_DB))
    assert all(ok for (ok,) in rows)
    return len(rows)


def test_handler_retries_once_when_the_redshift_connection_dropped(handler_env, rs_handler_env):
    """A cached redshift-connector connection cut by the server is replaced and the invocation retried, not failed."""
    dbs = handler_env
    store_directly(dbs, [order("before-cut", 1)])
    assert sync.handler(scheduled_event("sync"), None)["synced"] == 1
    assert _terminate_warehouse_sessions(rs_handler_env) >= 1
    store_directly(dbs, [order("after-cut", 2)])
    connections = rs_handler_env.shim.connections
    result = sync.handler(scheduled_event("sync"), None)
    assert (result["synced"], result["pending"]) == (1, 0)
    assert rs_handler_env.shim.connections == connections + 1  # a fresh warehouse connection
    assert [r[0] for r in fact_rows(rs_handler_env)] == ["after-cut", "before-cut"]


def test_connection_errors_are_told_from_sql_errors(rs_handler_env):
    """A SQL error is raised at once; a dropped redshift-connector connection is retried once on a fresh one."""
    calls: list[str] = []

    @env.fresh_connections_on_error
    def bad_sql() -> None:
        calls.append("bad_sql")
        with env.warehouse().cursor() as cur:
            cur.execute("SELECT * FROM no_such_table")

    with pytest.raises(redshift_connector.ProgrammingError) as raised:
        bad_sql()
    assert calls == ["bad_sql"] and not is_connection_error(raised.value)

    @env.fresh_connections_on_error
    def reads() -> int:
        calls.append("reads")
        with env.warehouse().cursor() as cur:
            cur.execute("SELECT count(*) FROM state_population")
            count = cur.fetchone()[0]
        env.warehouse().commit()
        return count

    assert reads() == 51
    assert _terminate_warehouse_sessions(rs_handler_env) >= 1
    calls.clear()
    assert reads() == 51
    assert calls == ["reads", "reads"]
    # The driver reports every server error as ProgrammingError({field: value}); a shutdown SQLSTATE means the
    # session is gone, any other does not.
    assert is_connection_error(redshift_connector.ProgrammingError({"S": "FATAL", "C": "57P01", "M": "terminating"}))
    assert is_connection_error(redshift_connector.ProgrammingError({"S": "FATAL", "C": "08006", "M": "lost"}))
    assert not is_connection_error(redshift_connector.ProgrammingError({"S": "ERROR", "C": "42P01", "M": "nope"}))
    assert not is_connection_error(ValueError("not a database error"))

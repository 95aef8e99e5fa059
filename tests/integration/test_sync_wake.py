"""A sync with nothing to move does not wake a warehouse that bills by wake (Redshift Serverless: at least 60 s of
base capacity per wake), through the Redshift path: redshift-connector against PostgreSQL through the loopback
shim (fixtures: tests/integration/conftest.py). What is counted is the driver's own connect (redshift_connector.connect,
counted or refused) and the connections the shim accepted; locally (PostgreSQL) an idle run is still recorded
(test_sync.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import redshift_connector

from lambdas import sync
from lambdas.core import env
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse
from tests.integration.helpers import order, query, store_directly
from tests.support.redshift import RS_DB, RS_ROLE, Redshift, fact_rows
from txpipe_cli.commands.warehouse import last_sync_label
from txpipe_cli.local.events import scheduled_event


@pytest.fixture
def driver_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts redshift-connector's own connect calls (the port of each), connecting for real."""
    calls: list[int] = []
    real = redshift_connector.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("port", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(redshift_connector, "connect", counting)
    return calls


def recorded_runs(rs: Redshift) -> list[tuple[int, int]]:
    return rs.query("SELECT synced, pending FROM sync_runs ORDER BY finished_at")


def sessions(rs: Redshift, application_name: str) -> list[tuple[Any, ...]]:
    """The role's sessions of that application on the Redshift-path database, with when each last ran anything.
    (By application name: a session another test closed may linger a moment while its backend exits.)"""
    return rs.query("SELECT pid, state, state_change, query_start FROM pg_stat_activity "
                    "WHERE usename = %s AND datname = %s AND application_name = %s ORDER BY pid",
                    (RS_ROLE, RS_DB, application_name))


def test_capabilities_say_which_warehouse_bills_by_wake():
    assert RedshiftWarehouse.capabilities.bills_by_wake is True
    assert PostgresWarehouse.capabilities.bills_by_wake is False


def test_run_sync_connects_to_redshift_only_when_it_has_orders_to_move(rs_dbs, rs, driver_connects):
    """Given the backend's connect as its factory: an empty outbox makes no driver connect, no connection at the
    shim and no sync_runs row, and says warehouse_woken false; with orders, one connect, and the run recorded."""
    backend = RedshiftWarehouse(rs.endpoint, ssl=False, application_name="txpipe-wake-factory")
    connections, opened = rs.shim.connections, []

    def open_warehouse() -> Any:
        opened.append(backend.connect())
        return opened[-1]

    oltp = rs_dbs.connect("oltp")
    try:
        idle = run_sync(oltp, open_warehouse, backend=backend)
        assert (idle.synced, idle.pending, idle.batches, idle.warehouse_woken) == (0, 0, 0, False)
        assert (driver_connects, opened, rs.shim.connections) == ([], [], connections)
        assert recorded_runs(rs) == []

        store_directly(rs_dbs, [order(f"wake-{i}", 1 + i % 4) for i in range(3)])
        busy = run_sync(oltp, open_warehouse, backend=backend, batch_rows=2)
        assert (busy.synced, busy.pending, busy.batches, busy.warehouse_woken) == (3, 0, 2, True)
        assert (driver_connects, len(opened), rs.shim.connections) == ([rs.shim.port], 1, connections + 1)
        assert recorded_runs(rs) == [(3, 0)]
        assert len(fact_rows(rs)) == 3
    finally:
        oltp.close()
        for conn in opened:
            conn.close()


def test_run_sync_sends_nothing_on_an_open_redshift_connection_when_idle(rs_dbs, rs):
    """Handed an open connection instead of a factory, an idle run on Redshift leaves it untouched: no statement
    (the session's last activity does not move) and no run recorded."""
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect(application_name="txpipe-wake-open")
    try:
        before = sessions(rs, "txpipe-wake-open")
        assert len(before) == 1
        idle = run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert (idle.synced, idle.warehouse_woken) == (0, False)
        assert sessions(rs, "txpipe-wake-open") == before
        assert recorded_runs(rs) == []
    finally:
        oltp.close()
        warehouse.close()


def test_scheduled_sync_wakes_redshift_only_with_orders(handler_env, rs_handler_env):
    """The sync function, kind redshift: cold and idle, no warehouse connection and no run recorded; with orders,
    one connection and the run recorded; warm and idle again, the cached connection is sent nothing."""
    rs = rs_handler_env
    connections = rs.shim.connections
    for _ in range(2):
        idle = sync.handler(scheduled_event("sync"), None)
        assert (idle["synced"], idle["pending"], idle["warehouse_woken"]) == (0, 0, False)
    assert rs.shim.connections == connections
    assert recorded_runs(rs) == []

    store_directly(handler_env, [order(f"sched-{i}", 1 + i % 4) for i in range(4)])
    busy = sync.handler(scheduled_event("sync"), None)
    assert (busy["synced"], busy["warehouse_woken"]) == (4, True)
    assert rs.shim.connections == connections + 1
    assert recorded_runs(rs) == [(4, 0)]

    warm = sessions(rs, "txpipe-warehouse")
    assert len(warm) == 1  # the function keeps its connection while warm
    idle = sync.handler(scheduled_event("sync"), None)
    assert (idle["synced"], idle["warehouse_woken"]) == (0, False)
    assert sessions(rs, "txpipe-warehouse") == warm  # nothing sent on it: same session, last activity unchanged
    assert rs.shim.connections == connections + 1
    assert recorded_runs(rs) == [(4, 0)]


def test_scheduled_sync_with_the_driver_refused_succeeds_while_there_is_nothing_to_move(
        handler_env, rs_handler_env, monkeypatch):
    """With redshift-connector's connect refusing outright, idle runs still succeed (the driver is never asked);
    the first run with an order to move is the one that reaches it, and the order stays pending."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the warehouse must not be connected to")

    env.drop_connections()  # a cold function
    monkeypatch.setattr(redshift_connector, "connect", refuse)
    for _ in range(2):
        assert sync.handler(scheduled_event("sync"), None)["warehouse_woken"] is False
    store_directly(handler_env, [order("needs-the-warehouse", 1)])
    with pytest.raises(AssertionError, match="must not be connected"):
        sync.handler(scheduled_event("sync"), None)
    assert query(handler_env, "oltp", "SELECT order_id FROM outbox") == [("needs-the-warehouse",)]


def test_the_cli_calls_the_last_recorded_run_what_it_is_on_each_target():
    """status, sla-report and the dashboard show the warehouse's last recorded run: on AWS (Redshift, idle runs
    unrecorded) the last sync that moved orders, locally (every run recorded) the last sync."""
    assert last_sync_label("aws") == "last sync that moved orders"
    assert last_sync_label("local") == "last sync"

"""The warehouse code that runs against Amazon Redshift, driven through redshift-connector.

There is no Redshift here, so redshift-connector talks to the session's PostgreSQL server
through tests/support/redshift_shim.py (it strips the Redshift-only startup parameters and reports
Redshift's server_version), as an md5-authenticated role (the driver's SCRAM code fails
against PostgreSQL) that owns a warehouse database of its own. Everything else is the real
code: connect_redshift, the migrations and the reports here; the Redshift warehouse's loads in
test_warehouse_redshift_insert.py (multi-row INSERT) and test_warehouse_redshift_copy.py (S3 and COPY);
the sync/ops/refresh handlers with TXPIPE_WAREHOUSE_KIND=redshift in test_warehouse_redshift_handlers.py.
Those modules and this one share the fixtures of tests/integration/conftest.py and the helpers of
tests/support/redshift.py.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redshift_connector
from psycopg2 import sql

from lambdas.core import schema
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.reporting import last_sync, refresh_views, sla_report, state_report
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.redshift import (
    RedshiftWarehouse,
    connect_redshift,
)
from tests.integration.helpers import order, store_directly
from tests.support.redshift import RS_DB, RS_ROLE, SALES, SCRATCH_DB
from tests.support.redshift_shim import RedshiftShim

# -- the shim and the connection --------------------------------------------------------------------------

def test_redshift_connector_needs_the_shim(pg_server, redshift):
    """Straight to PostgreSQL the driver is refused (Redshift-only startup parameters); via the shim it works."""
    server, _ = pg_server
    with pytest.raises(redshift_connector.Error):
        connect_redshift(Endpoint("127.0.0.1", server.port, RS_DB, redshift.endpoint.secret_ref), ssl=False)
    redshift.connect().close()


def test_connect_redshift_through_the_shim(redshift):
    """connect_redshift logs in as the secret's md5 role, autocommit off, asking for the base (text) protocol."""
    conn = redshift.connect(application_name="txpipe-test")
    try:
        assert conn.autocommit is False
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database(), current_setting('application_name')")
            assert tuple(cur.fetchone()) == (RS_ROLE, RS_DB, "txpipe-test")
            cur.execute("SHOW server_version")  # query results pass through untouched
            assert not cur.fetchone()[0].startswith("8.0.2")
        conn.rollback()
        statuses = dict(conn.parameter_statuses)
        assert statuses[b"server_version"] == b"8.0.2"  # what Redshift reports; the shim rewrote it
        sent = redshift.shim.startup_parameters
        assert sent["client_protocol_version"] == "0"  # pinned: the same result protocol on Redshift as here
        assert {"client_protocol_version", "driver_version", "os_version"} <= redshift.shim.dropped_parameters
        assert sent["user"] == RS_ROLE and "password" not in sent
    finally:
        conn.close()


def test_connect_redshift_never_logs_the_password(redshift, caplog):
    """At DEBUG, the driver logs its connection properties; the password appears in no log record."""
    caplog.set_level(logging.DEBUG)
    redshift.connect().close()
    assert any(r.name.startswith("redshift_connector") for r in caplog.records)  # it did log, at length
    assert redshift.password not in caplog.text
    assert redshift.password.split(" ")[0] not in caplog.text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the driver builds its SSLContext the deprecated way
def test_connect_redshift_defaults_to_tls(redshift):
    """By default connect_redshift asks for TLS, and a server that refuses it (the shim) is refused in turn."""
    with pytest.raises(redshift_connector.InterfaceError):
        connect_redshift(redshift.endpoint, connect_timeout=5)


def test_reads_outlive_the_connect_timeout(redshift):
    """The driver's socket timeout bounds the connect only: a statement longer than it still completes."""
    conn = redshift.connect(connect_timeout=1)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(1.3), 42")
            assert cur.fetchone()[1] == 42
        conn.rollback()
    finally:
        conn.close()


def test_shim_stops_cleanly():
    """A stopped shim closes its live client connections and refuses new ones; its thread ends."""
    listener = socket.create_server(("127.0.0.1", 0))  # a fake upstream that accepts and stays silent
    try:
        shim = RedshiftShim(listener.getsockname()[1]).start()
        client = socket.create_connection(("127.0.0.1", shim.port), timeout=5)
        client.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        assert client.recv(1) == b"N"
        shim.stop()
        assert client.recv(1) == b""  # closed by the shim
        client.close()
        assert not shim._thread.is_alive()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", shim.port), timeout=2).close()
    finally:
        listener.close()


# -- schema ---------------------------------------------------------------------------------------

def test_warehouse_migrations_run_on_redshift_connector(pg_server, redshift):
    """On a fresh database, migrate applies every version, then nothing; load_state_population loads 51
    rows, idempotently."""
    server, admin_ref = pg_server
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(SCRATCH_DB),
                                                                       sql.Identifier(RS_ROLE)))
        conn = connect_redshift(Endpoint("127.0.0.1", redshift.shim.port, SCRATCH_DB, redshift.endpoint.secret_ref),
                                ssl=False)
        try:
            assert schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS) == [v for v, _ in schema.WAREHOUSE_MIGRATIONS]
            assert schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS) == []
            assert schema.load_state_population(conn) == 51
            assert schema.load_state_population(conn) == 51
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), sum(population) FROM state_population")
                assert tuple(cur.fetchone()) == (51, sum(p for _, _, p in schema.state_populations()))
                cur.execute("SELECT population FROM state_population WHERE state = %s", ("TX",))
                assert cur.fetchone()[0] == 29_145_505
                cur.execute("SELECT count(*) FROM sales_by_state")
                assert cur.fetchone()[0] == 0
                cur.execute("SELECT version FROM schema_migrations ORDER BY version")
                assert [r[0] for r in cur.fetchall()] == [v for v, _ in schema.WAREHOUSE_MIGRATIONS]
            conn.commit()
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.close()


# -- reporting over redshift-connector --------------------------------------------------------------------

def test_reporting_over_redshift_connector(rs_dbs, rs):
    """refresh_views, state_report, sla_report and last_sync give over redshift-connector what psycopg2 gives."""
    accepted = datetime.now(UTC) - timedelta(seconds=30)
    store_directly(rs_dbs, [order(oid, c, p, q, price, accepted) for oid, c, p, q, price in SALES])
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    reference = connect_postgres(rs.direct)
    try:
        run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert refresh_views(warehouse) == ["sales_by_state", "state_sales"]
        tx = state_report(warehouse, "TX")
        assert tx == state_report(reference, "TX")
        assert (tx["total_pizzas"], tx["gross_sales"], tx["unique_customers"]) == (13, 122.0, 2)
        assert abs(Decimal(tx["gross_sales_per_capita"]) - Decimal("122.00") / 29_145_505) < Decimal("1e-18")
        assert [(t["pizza_type"], t["total_pizzas"], t["gross_sales"]) for t in tx["top_pizzas"]] == [
            ("meat lover", 4, 20.0), ("pepperoni", 3, 36.0), ("veggie", 3, 36.0)]
        assert state_report(warehouse, "WY")["total_pizzas"] == 0

        now = datetime.now(UTC)
        sla = sla_report(oltp, warehouse, sla_seconds=900, since_seconds=3600, now=now)
        assert sla == sla_report(oltp, reference, sla_seconds=900, since_seconds=3600, now=now)
        assert (sla["synced"], sla["pending"], sla["breaches"], sla["warehouse_orders"]) == (6, 0, 0, 6)
        assert 29 <= sla["lag_seconds"]["p50"] <= sla["lag_seconds"]["max"] < 120
        assert sla_report(oltp, warehouse, sla_seconds=10, since_seconds=None, now=now)["breaches"] == 6

        synced = last_sync(warehouse)
        assert synced == last_sync(reference)
        assert (synced["synced"], synced["pending"]) == (6, 0)
    finally:
        oltp.close()
        warehouse.close()
        reference.close()

"""The warehouse code that runs against Amazon Redshift, driven through redshift-connector.

There is no Redshift here, so redshift-connector talks to the session's PostgreSQL server
through tests/support/redshift_shim.py (it strips the Redshift-only startup parameters and reports
Redshift's server_version), as an md5-authenticated role (the driver's SCRAM code fails
against PostgreSQL) that owns a warehouse database of its own. Everything else is the real
code: connect_redshift, the migrations and the reports here; the Redshift warehouse's loads in
test_warehouse_redshift_insert.py (multi-row INSERT) and test_warehouse_redshift_copy.py (S3 and COPY);
the sync/ops/refresh handlers with TXPIPE_WAREHOUSE_KIND=redshift in test_warehouse_redshift_handlers.py.
Those modules share this one's fixtures and helpers.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

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
from tests.integration.helpers import md5_login, order, retry_until, seed_customers, store_directly
from tests.support.redshift_shim import RedshiftShim

RS_ROLE = "txpipe_rs"
RS_DB = "test_rs_warehouse"
SCRATCH_DB = "test_rs_scratch"
CUSTOMERS = [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"], [4, "NY", "D"]]
STATE_OF = {1: "TX", 2: "TX", 3: "CA", 4: "NY"}
FACT_COLUMNS = "order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at, loaded_at"


@dataclass
class Redshift:
    """The md5 role's warehouse database, reached through the shim (as Redshift) or directly (for checks)."""

    shim: RedshiftShim
    endpoint: Endpoint  # 127.0.0.1:<shim port>, the md5 role's secret
    direct: Endpoint  # the server's own port, the superuser's secret
    password: str

    def connect(self, **kwargs: Any) -> Any:
        return connect_redshift(self.endpoint, ssl=False, **kwargs)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Runs a query with psycopg2 straight on the server: an independent read of what the driver wrote."""
        conn = connect_postgres(self.direct, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def env(self) -> dict[str, str]:
        return {**self.endpoint.to_env("warehouse"), "TXPIPE_WAREHOUSE_KIND": "redshift",
                "TXPIPE_WAREHOUSE_SSL": "false"}


@pytest.fixture(scope="module")
def redshift(pg_server, databases, tmp_path_factory) -> Iterator[Redshift]:
    """An md5 role owning its own migrated warehouse database, a pg_hba line for it, and a shim in front."""
    server, admin_ref = pg_server
    password = "rs-" + os.urandom(8).hex() + " q'uote\"d\\%"  # the secret must travel intact, specials and all
    secret = tmp_path_factory.mktemp("redshift") / "secret.json"
    secret.write_text(json.dumps({"username": RS_ROLE, "password": password}))
    os.chmod(secret, 0o600)
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    shim = RedshiftShim(server.port).start()
    try:
        with md5_login(server, admin, RS_ROLE, password, RS_DB):
            target = Redshift(shim, Endpoint("127.0.0.1", shim.port, RS_DB, f"file:{secret}"),
                              Endpoint("127.0.0.1", server.port, RS_DB, admin_ref), password)
            conn = retry_until(lambda: target.connect(connect_timeout=2))
            try:
                schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS)
                schema.load_state_population(conn)
            finally:
                conn.close()
            yield target
    finally:
        shim.stop()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.close()


@pytest.fixture
def rs(redshift: Redshift) -> Redshift:
    """The Redshift-path warehouse emptied (reference data kept) with its views refreshed to empty."""
    redshift.query("TRUNCATE orders_fact, sync_runs")
    redshift.query("REFRESH MATERIALIZED VIEW sales_by_state")
    redshift.query("REFRESH MATERIALIZED VIEW state_sales")
    return redshift


@pytest.fixture
def dbs(clean):
    seed_customers(clean, CUSTOMERS)
    return clean


@pytest.fixture
def rs_handler_env(handler_env, rs: Redshift, monkeypatch) -> Redshift:
    """The handlers see the session's OLTP and queue, and the Redshift-path warehouse through the shim."""
    seed_customers(handler_env, CUSTOMERS)
    for key, value in rs.env().items():
        monkeypatch.setenv(key, value)
    return rs


def fact_rows(rs: Redshift) -> list[tuple[Any, ...]]:
    return rs.query(f"SELECT {FACT_COLUMNS} FROM orders_fact ORDER BY order_id")  # noqa: S608 - fixed names


def outbox_ids(dbs) -> list[str]:
    conn = dbs.connect("oltp", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT order_id FROM outbox ORDER BY order_id")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def tricky_orders() -> list:
    """Ids a CSV or a hand-built INSERT would mangle, prices at the edges of decimal(8,2), odd time zones."""
    base = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC) - timedelta(minutes=5)
    zones = [timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45)), UTC,
             timezone(timedelta(hours=14)), timezone(timedelta(hours=-9, minutes=-30))]
    ids = ["a,b", 'quote"inside', "single'quote", "back\\slash", "\\N", " padded ", "NULL", "%s", "$1",
           "x" * 64, "tab\there", "ünïcødé-ℤ", "); DROP TABLE orders_fact; --"]
    prices = ["0.01", "16.99", "999999.99", "10.10", "12.34"]
    return [order(oid, 1 + i % 4, ["cheese", "meat lover", "veggie"][i % 3], 1 + i % 100, prices[i % len(prices)],
                  (base + timedelta(microseconds=7 * i)).astimezone(zones[i % len(zones)]))
            for i, oid in enumerate(ids)]


class FailingCommit:
    """A warehouse connection whose `at`-th commit raises: the process dies just before that commit. On Redshift
    run_sync commits twice a batch: 1 after clearing the stage (TRUNCATE commits there), 2 after the merge."""

    def __init__(self, conn: Any, at: int = 2) -> None:
        self._conn, self._at, self.commits = conn, at, 0

    def commit(self) -> None:
        self.commits += 1
        if self.commits == self._at:
            raise ConnectionAbortedError("simulated crash before the warehouse commit")
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


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

# TX: customers 1 and 2. cheese 3 for 30.00; pepperoni 3 for 36.00; veggie 3 for 36.00; meat lover 4 for 20.00.
SALES = [("tx-1", 1, "cheese", 3, "10.00"), ("tx-2", 1, "pepperoni", 2, "12.00"), ("tx-3", 2, "pepperoni", 1, "12.00"),
         ("tx-4", 2, "veggie", 3, "12.00"), ("tx-5", 2, "meat lover", 4, "5.00"), ("ca-1", 3, "cheese", 2, "10.50")]


def test_reporting_over_redshift_connector(dbs, rs):
    """refresh_views, state_report, sla_report and last_sync give over redshift-connector what psycopg2 gives."""
    accepted = datetime.now(UTC) - timedelta(seconds=30)
    store_directly(dbs, [order(oid, c, p, q, price, accepted) for oid, c, p, q, price in SALES])
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
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

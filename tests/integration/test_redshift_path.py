"""The warehouse code that runs against Amazon Redshift, driven through redshift-connector.

There is no Redshift here, so redshift-connector talks to the session's PostgreSQL server
through tests/redshift_shim.py (it strips the Redshift-only startup parameters and reports
Redshift's server_version), as an md5-authenticated role (the driver's SCRAM code fails
against PostgreSQL) that owns a warehouse database of its own. Everything else is the real
code: connect_redshift, load_stage_redshift, the migrations, run_sync, the reports and the
sync/ops/refresh handlers with TXPIPE_WAREHOUSE_KIND=redshift.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import redshift_connector
import sqlglot
from psycopg2 import sql
from sqlglot.errors import ErrorLevel

from lambdas import ops, refresh, sync
from lambdas.core import env, schema
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.reporting import last_sync, refresh_views, sla_report, state_report
from lambdas.core.schema import STAGE_DDL
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import (
    LOAD_CHUNK_ROWS,
    RedshiftWarehouse,
    connect_redshift,
    insert_stage,
    is_connection_error,
)
from tests.integration.helpers import order, seed_customers, store_directly
from tests.redshift_shim import RedshiftShim
from txpipe_cli.local.events import LambdaContext, scheduled_event

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


def _reload_and_wait_for_md5_login(admin: Any, endpoint: Endpoint) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:
        try:
            connect_redshift(endpoint, ssl=False, connect_timeout=2).close()
            return
        except Exception:  # noqa: BLE001 - the server may not have re-read pg_hba.conf yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def redshift(pg_server, databases, tmp_path_factory) -> Iterator[Redshift]:
    """An md5 role owning its own migrated warehouse database, a pg_hba line for it, and a shim in front."""
    server, admin_ref = pg_server
    password = "rs-" + os.urandom(8).hex() + " q'uote\"d\\%"  # the secret must travel intact, specials and all
    secret = tmp_path_factory.mktemp("redshift") / "secret.json"
    secret.write_text(json.dumps({"username": RS_ROLE, "password": password}))
    os.chmod(secret, 0o600)
    hba = server.data_dir / "pg_hba.conf"
    original_hba = hba.read_text()
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    shim = RedshiftShim(server.port).start()
    try:
        with admin.cursor() as cur:
            cur.execute("SET password_encryption = 'md5'")
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(RS_ROLE)), (password,))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(RS_DB), sql.Identifier(RS_ROLE)))
            cur.execute("SELECT rolpassword LIKE 'md5%%' FROM pg_authid WHERE rolname = %s", (RS_ROLE,))
            assert cur.fetchone() == (True,)
        # first matching line wins: md5 for this role only; everyone else keeps the server's scram
        hba.write_text(f"host all {RS_ROLE} 127.0.0.1/32 md5\n" + original_hba)
        target = Redshift(shim, Endpoint("127.0.0.1", shim.port, RS_DB, f"file:{secret}"),
                          Endpoint("127.0.0.1", server.port, RS_DB, admin_ref), password)
        _reload_and_wait_for_md5_login(admin, target.endpoint)
        conn = target.connect()
        try:
            schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS)
            schema.load_state_population(conn)
        finally:
            conn.close()
        yield target
    finally:
        shim.stop()
        hba.write_text(original_hba)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            for db in (RS_DB, SCRATCH_DB):
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(RS_ROLE)))
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


# -- schema and bulk load ---------------------------------------------------------------------------------

def test_warehouse_migrations_run_on_redshift_connector(pg_server, redshift):
    """On a fresh database, migrate applies v1 then nothing; load_state_population loads 51 rows, idempotently."""
    server, admin_ref = pg_server
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(SCRATCH_DB),
                                                                       sql.Identifier(RS_ROLE)))
        conn = connect_redshift(Endpoint("127.0.0.1", redshift.shim.port, SCRATCH_DB, redshift.endpoint.secret_ref),
                                ssl=False)
        try:
            assert schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS) == [1]
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
                cur.execute("SELECT version FROM schema_migrations")
                assert [tuple(r) for r in cur.fetchall()] == [(1,)]
            conn.commit()
        finally:
            conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.close()


class CountingCursor:
    """A cursor that records the SQL and parameter count of each execute."""

    def __init__(self, cursor: Any) -> None:
        self.cursor, self.calls = cursor, []

    def execute(self, sql: str, params: Any = None) -> None:
        self.calls.append((sql, len(params or ())))
        self.cursor.execute(sql, params)


def test_load_stage_redshift_loads_in_chunks(rs):
    """2,345 rows go into orders_stage in 3 parameterized INSERTs (1,000 + 1,000 + 345), values exact."""
    stamp = datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=-7)))
    rows = [(f"id-{i:05d}'\\,", 10**12 + i, "TX", "supreme", 1 + i % 100, Decimal(i % 100_000) / 100,
             stamp + timedelta(microseconds=i), stamp + timedelta(seconds=1, microseconds=i)) for i in range(2345)]
    conn = rs.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(STAGE_DDL)
            counting = CountingCursor(cur)
            insert_stage(counting, rows)
            assert [n for _, n in counting.calls] == [1000 * 8, 1000 * 8, 345 * 8]
            assert LOAD_CHUNK_ROWS == 1000
            cur.execute("SELECT order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at "
                        "FROM orders_stage ORDER BY order_id")
            loaded = [tuple(r) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    assert loaded == rows
    insert = counting.calls[-1][0]
    [parsed] = sqlglot.parse(insert.replace("%s", "'x'"), read="redshift", error_level=ErrorLevel.RAISE)
    assert parsed.key == "insert" and insert.count("%s") == 345 * 8


def test_load_stage_redshift_rejects_malformed_rows(rs):
    """A row with the wrong number of values raises before anything is sent."""
    sent: list[Any] = []

    class Recorder:
        def execute(self, sql: str, params: Any = None) -> None:
            sent.append(sql)

    with pytest.raises(ValueError, match="8 values"):
        insert_stage(Recorder(), [("only", "three", "values")])
    assert sent == []
    insert_stage(Recorder(), [])
    assert sent == []


# -- run_sync over redshift-connector ---------------------------------------------------------------------

def test_run_sync_moves_exact_values_and_is_idempotent(dbs, rs):
    """psycopg2 OLTP -> redshift-connector warehouse: ids, Decimal prices, instants arrive exactly; a re-run moves 0."""
    orders = tricky_orders()
    store_directly(dbs, orders)
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
    try:
        before = datetime.now(UTC)
        result = run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert (result.synced, result.pending, result.batches) == (len(orders), 0, 1)
        assert result.inserted == len(orders)  # redshift-connector reports the merge's row count too
        first = fact_rows(rs)
        expected = sorted((o.order_id, o.customer_id, STATE_OF[o.customer_id], o.type, o.qty, o.retail_price,
                           o.accepted_at) for o in orders)
        assert [r[:7] for r in first] == expected
        assert all(r[8] >= before for r in first)
        # read back through redshift-connector too: aware UTC datetimes, Decimals, strings as written
        with warehouse.cursor() as cur:
            cur.execute("SELECT order_id, retail_price, accepted_at FROM orders_fact ORDER BY order_id")
            via_driver = [tuple(r) for r in cur.fetchall()]
        warehouse.commit()
        assert via_driver == [(r[0], r[5], r[6]) for r in expected]
        assert all(isinstance(p, Decimal) and a.utcoffset() == timedelta(0) for _, p, a in via_driver)
        assert outbox_ids(dbs) == []

        again = run_sync(oltp, warehouse, backend=RedshiftWarehouse())
        assert (again.synced, again.pending, again.batches) == (0, 0, 0)
        assert fact_rows(rs) == first
        assert rs.query("SELECT synced, pending FROM sync_runs ORDER BY finished_at") == [(len(orders), 0), (0, 0)]
    finally:
        oltp.close()
        warehouse.close()


def test_run_sync_in_batches_larger_than_a_chunk(dbs, rs):
    """2,500 orders with batch_rows=1,200 move in 3 batches, each loaded in several INSERT chunks, none doubled."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    store_directly(dbs, [order(f"bulk-{i:05d}", 1 + i % 4, "pepperoni", 1 + i % 7, "11.25",
                               start + timedelta(microseconds=i)) for i in range(2500)])
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
    try:
        result = run_sync(oltp, warehouse, batch_rows=1200, backend=RedshiftWarehouse())
    finally:
        oltp.close()
        warehouse.close()
    assert (result.synced, result.batches, result.pending) == (2500, 3, 0)
    assert rs.query("SELECT count(*), count(DISTINCT order_id), sum(qty * retail_price) FROM orders_fact") == [
        (2500, 2500, sum(Decimal("11.25") * (1 + i % 7) for i in range(2500)))]
    assert outbox_ids(dbs) == []


class FailingCommit:
    """A warehouse connection whose first commit raises: the process dies after the merge, before committing."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def commit(self) -> None:
        raise ConnectionAbortedError("simulated crash before the warehouse commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_crash_before_warehouse_commit_leaves_nothing(dbs, rs):
    """Merged but not committed: closing the redshift-connector connection keeps no row; a re-run moves all."""
    store_directly(dbs, [order(f"crash-{i}", 1 + i % 4) for i in range(5)])
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
    with pytest.raises(ConnectionAbortedError):
        run_sync(oltp, FailingCommit(warehouse), backend=RedshiftWarehouse())
    oltp.close()
    warehouse.close()
    assert fact_rows(rs) == []
    assert len(outbox_ids(dbs)) == 5
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
    try:
        assert run_sync(oltp, warehouse, backend=RedshiftWarehouse()).synced == 5
    finally:
        oltp.close()
        warehouse.close()
    assert len(fact_rows(rs)) == 5


def test_copy_loader_cannot_run_on_redshift_connector(dbs, rs):
    """The PostgreSQL COPY loader fails on a redshift-connector cursor, so the kind's loader matters."""
    store_directly(dbs, [order("copy-1", 1)])
    oltp, warehouse = dbs.connect("oltp"), rs.connect()
    try:
        with pytest.raises(AttributeError):
            run_sync(oltp, warehouse, backend=PostgresWarehouse())
    finally:
        oltp.close()
        warehouse.close()
    assert fact_rows(rs) == []
    assert outbox_ids(dbs) == ["copy-1"]


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
        assert tx["gross_sales_per_capita"] == float(round(Decimal("122.00") / 29_145_505, 8))
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


# -- the handlers with TXPIPE_WAREHOUSE_KIND=redshift -----------------------------------------------------

def test_env_picks_the_redshift_driver_and_loader(rs_handler_env, monkeypatch):
    """With kind redshift, env.warehouse() is a redshift-connector connection and the loader is the INSERT one."""
    backend = env.warehouse_backend()
    assert isinstance(backend, RedshiftWarehouse) and backend.stage is None  # no bucket: the INSERT load
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
    report = ops.handler({"action": "report", "state": "TX"}, None)
    assert (report["total_pizzas"], report["gross_sales"], report["unique_customers"]) == (13, 122.0, 2)
    assert report["top_pizzas"][0]["pizza_type"] == "meat lover"
    assert ops.handler({"action": "report", "state": "XX"}, None)["error"].startswith("unknown state")
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

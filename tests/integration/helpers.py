"""Small builders shared by the integration tests: orders, SQS messages, queries."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg2 import sql

from lambdas.core.customers import add_rows, commit_load
from lambdas.core.orders import Order
from lambdas.core.queue import Message, sqs_event
from lambdas.core.sync import SyncResult, run_sync
from tests.support import database
from txpipe_cli.local.events import REGION, queue_arn

_ids = itertools.count(1)


def order(order_id: str, customer_id: int = 1, pizza: str = "cheese", qty: int = 1,
          price: str = "10.00", accepted_at: datetime | None = None) -> Order:
    return Order(order_id, customer_id, pizza, qty, Decimal(price), accepted_at or datetime.now(UTC))


def message(body: str | Order, message_id: str | None = None, receive_count: int = 1) -> Message:
    text = body.to_message() if isinstance(body, Order) else body
    n = next(_ids)
    return Message(message_id or f"msg-{n}", f"receipt-{n}", text, receive_count, datetime.now(UTC))


def event(*items: str | Order | Message) -> dict[str, Any]:
    """An SQS event for the store function, one record per order / body / message."""
    messages = [m if isinstance(m, Message) else message(m) for m in items]
    return sqs_event(messages, queue_arn("orders"), REGION)


def delivered(databases: Any, *items: str | Order, visibility: float = 30.0) -> tuple[dict[str, Any], Any]:
    """Sends each order / body as one message to the real orders queue and receives them all back, as the
    event source mapping would: the SQS event (real message ids and receipts) and the queue."""
    from lambdas.core.queue import PgQueue

    queue = PgQueue.from_endpoint(databases.endpoints["queue"], "orders", visibility_timeout=visibility)
    bodies = [i.to_message() if isinstance(i, Order) else i for i in items]
    queue.send_batch(bodies)
    messages = queue.receive(len(bodies))
    assert sorted(m.body for m in messages) == sorted(bodies)
    by_body = {b: [m for m in messages if m.body == b] for b in bodies}
    ordered = [by_body[b].pop() for b in bodies]  # the event keeps the order the items were given in
    return sqs_event(ordered, queue_arn("orders"), REGION), queue


def message_ids(evt: dict[str, Any], *indexes: int) -> list[dict[str, str]]:
    """batchItemFailures naming the records at these indexes."""
    return [{"itemIdentifier": evt["Records"][i]["messageId"]} for i in indexes]


def dead_letters(queue: Any) -> list[tuple[str, str]]:
    """(body, reason) of every message in the dead-letter queue."""
    return sorted((d.body, d.reason) for d in queue.list_dead_letters(100))


def seed_customers(databases: Any, rows: list[list[Any]]) -> None:
    """Loads [customer_id, state, name] rows as `txpipe seed` does (customers.add_rows, then commit_load),
    moving a customer already loaded in another state (replace)."""
    conn = databases.connect("oltp")
    load_id = f"test-{next(_ids)}"
    try:
        assert add_rows(conn, load_id, rows, first=True) == len(rows)
        assert commit_load(conn, load_id, replace=True)["loaded"] == len(rows)
    finally:
        conn.close()


def query(databases: Any, name: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """`sql`'s rows from one of the session's databases (tests/support/database.py's query, autocommit)."""
    return database.query(databases.endpoints[name], sql, params, autocommit=True)


def scalar(databases: Any, name: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return query(databases, name, sql, params)[0][0]


def on_fresh_connections(databases: Any, run: Any, **kwargs: Any) -> Any:
    """`run(oltp, warehouse, **kwargs)` on fresh connections of `databases`, closed after."""
    oltp, warehouse = databases.connect("oltp"), databases.connect("warehouse")
    try:
        return run(oltp, warehouse, **kwargs)
    finally:
        oltp.close()
        warehouse.close()


def sync_once(databases: Any, **kwargs: Any) -> SyncResult:
    """One run of the sync from OLTP to the warehouse on fresh connections of `databases`."""
    return on_fresh_connections(databases, run_sync, **kwargs)


def sla_once(databases: Any, **kwargs: Any) -> dict[str, Any]:
    """The SLA report (lambdas.core.reporting.sla_report) on fresh connections of `databases`."""
    from lambdas.core.reporting import sla_report

    return on_fresh_connections(databases, sla_report, **kwargs)


def counts(databases: Any) -> dict[str, int]:
    """Row counts of the OLTP tables the store function writes."""
    return {table: scalar(databases, "oltp", f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            for table in ("orders", "outbox", "rejected_orders")}


def store_directly(databases: Any, orders: list[Order]) -> None:
    """Stores orders (and their outbox rows) in one OLTP transaction, as the store function does."""
    from lambdas.core.store import store_orders

    conn = databases.connect("oltp")
    try:
        result = store_orders(conn, orders)
        conn.commit()
    finally:
        conn.close()
    assert result.stored == len(orders), result


@contextlib.contextmanager
def md5_login(server: Any, admin: Any, role: str, password: str, database: str) -> Iterator[None]:
    """A login role with an md5 password (redshift-connector's SCRAM code fails against PostgreSQL) owning a
    database of its own, and a pg_hba.conf line giving it md5 on loopback; all removed on exit. `admin` is an
    autocommit superuser connection to the server."""
    hba = server.data_dir / "pg_hba.conf"
    original_hba = hba.read_text()
    with admin.cursor() as cur:
        cur.execute("SET password_encryption = 'md5'")
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (password,))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
        cur.execute("SELECT rolpassword LIKE 'md5%%' FROM pg_authid WHERE rolname = %s", (role,))
        assert cur.fetchone() == (True,)
    # The first matching line wins: md5 for this role only; everyone else keeps the server's scram.
    hba.write_text(f'host all "{role}" 127.0.0.1/32 md5\n' + original_hba)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        yield
    finally:
        hba.write_text(original_hba)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def retry_until(attempt: Any, seconds: float = 10) -> Any:
    """attempt() until it stops raising (the server may not have re-read pg_hba.conf yet), for `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return attempt()
        except Exception:  # noqa: BLE001 - re-raised once the deadline passes
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

"""Small builders shared by the integration tests: orders, SQS messages, queries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lambdas.core.customers import upsert_customers
from lambdas.core.orders import Order
from lambdas.core.queue import Message, sqs_event
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


def seed_customers(databases: Any, rows: list[list[Any]]) -> None:
    conn = databases.connect("oltp")
    try:
        assert upsert_customers(conn, rows) == len(rows)
    finally:
        conn.close()


def query(databases: Any, name: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = databases.connect(name, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(databases: Any, name: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return query(databases, name, sql, params)[0][0]


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

"""The seed's algorithms, on the same emulator (the local queue) and the same databases as txpipe.

The design txpipe replaces, as its issue describes it:

- ingest: an HTTP API that sends each order to the queue with its own `send_message`;
- store: a consumer that takes the queue's messages 10 at a time (SQS's batch) and, for each
  order, runs one INSERT and one COMMIT in the OLTP database, then one more `send_message`
  with the order id to a second queue (the work list of the sync);
- sync: every 15 minutes, drains that queue of order ids 10 at a time, with one SELECT per
  order in the OLTP database and one autocommitted INSERT per order into the warehouse.

The local queue (`PgQueue`, SQS semantics on PostgreSQL) stands in for SQS for both
designs, under queue names of their own. Validation is txpipe's own code, so both sides
pay the same for it, and the seed's API takes the same request bodies (arrays of up to 500
orders) from the same client, `txpipe send`; only what happens per order differs.

`python -m benchmarks.seed --home H --port P` serves the seed's API and runs its store
consumers until SIGTERM or --max-seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from psycopg2 import sql

from lambdas.core.db import connect_postgres
from lambdas.core.orders import MAX_BODY_BYTES, Order, RequestRejected, accept, parse_json, validate_items
from lambdas.core.queue import PgQueue
from txpipe_cli.local.state import LocalState

ORDERS_QUEUE = "seed-orders"
IDS_QUEUE = "seed-ids"
SQS_BATCH = 10
INSERT_ORDER_SQL = """INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at)
VALUES (%s, %s, %s, %s, %s, %s)"""
SELECT_ORDER_SQL = """SELECT o.order_id, o.customer_id, c.state, o.pizza_type, o.qty, o.retail_price, o.accepted_at,
       o.stored_at
FROM orders o JOIN customers c ON c.customer_id = o.customer_id
WHERE o.order_id = %s"""
INSERT_FACT_SQL = """INSERT INTO {}
    (order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""


def _queue(state: LocalState, name: str) -> PgQueue:
    return PgQueue.from_endpoint(state.endpoint("queue"), name)


# --------------------------------------------------------------------------- ingest + store


class SeedIngest:
    """The seed's API and store consumers in one process, as txpipe's runtime runs its own."""

    def __init__(self, state: LocalState, port: int, consumers: int) -> None:
        self.state = state
        self.stop = threading.Event()
        self.orders = _queue(state, ORDERS_QUEUE)
        self.ids = _queue(state, IDS_QUEUE)
        self.consumers = consumers
        self.stored = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        seed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as the txpipe runtime's server: the same HTTP stack on both sides

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def _reply(self, status: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.rstrip("/") != "/orders" or length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._reply(404 if length <= MAX_BODY_BYTES else 413, {"error": "refused"})
                    return
                body = self.rfile.read(length)
                try:
                    orders = accept(validate_items(parse_json(body)))
                except RequestRejected as rejected:
                    self._reply(rejected.status, {"errors": [e.to_dict() for e in rejected.errors]})
                    return
                for order in orders:  # the seed: one send_message per order
                    seed.orders.send_batch([order.to_message()])
                self._reply(202, {"accepted": len(orders), "order_ids": [o.order_id for o in orders]})

        return Handler

    def consume(self) -> None:
        oltp = connect_postgres(self.state.endpoint("oltp"), application_name="seed-store")
        try:
            while not self.stop.is_set():
                messages = self.orders.receive(SQS_BATCH, wait_seconds=0.5)
                for message in messages:
                    order = Order.from_message(message.body)
                    with oltp.cursor() as cur:  # one INSERT + COMMIT per row
                        cur.execute(INSERT_ORDER_SQL, (order.order_id, order.customer_id, order.type, order.qty,
                                                       order.retail_price, order.accepted_at))
                    oltp.commit()
                    self.ids.send_batch([order.order_id])  # one more send_message per stored row
                self.orders.delete([m.receipt_handle for m in messages])
        finally:
            oltp.close()

    def serve(self, max_seconds: float) -> None:
        threads = [threading.Thread(target=self.consume, daemon=True) for _ in range(self.consumers)]
        for thread in threads:
            thread.start()
        timer = threading.Timer(max_seconds, self.shutdown)
        timer.daemon = True
        timer.start()
        signal.signal(signal.SIGTERM, lambda *_: self.shutdown())
        self.server.serve_forever(poll_interval=0.2)
        for thread in threads:
            thread.join(timeout=10)

    def shutdown(self) -> None:
        self.stop.set()
        threading.Thread(target=self.server.shutdown, daemon=True).start()


# --------------------------------------------------------------------------- sync


def fill_ids_queue(state: LocalState, order_ids: list[str]) -> None:
    """Puts order ids on the seed's sync queue as its store would have (in bulk: this is setup, not timed)."""
    conn = connect_postgres(state.endpoint("queue"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO queue_messages (queue, body) SELECT %s, unnest(%s)", (IDS_QUEUE, order_ids))
    finally:
        conn.close()


def seed_sync(state: LocalState, target: tuple[str, str], max_seconds: float) -> int:
    """Drains the seed's queue of order ids 10 at a time: per order one SELECT (OLTP) and one autocommitted
    INSERT (warehouse), then the batch is deleted from the queue. Returns the orders moved."""
    queue = _queue(state, IDS_QUEUE)
    oltp = connect_postgres(state.endpoint("oltp"), autocommit=True, application_name="seed-sync")
    warehouse = connect_postgres(state.endpoint("warehouse"), autocommit=True, application_name="seed-sync")
    insert = sql.SQL(INSERT_FACT_SQL).format(sql.Identifier(*target))
    moved, deadline = 0, time.monotonic() + max_seconds
    try:
        with oltp.cursor() as read, warehouse.cursor() as write:
            while time.monotonic() < deadline:
                messages = queue.receive(SQS_BATCH)
                if not messages:
                    break
                for message in messages:
                    read.execute(SELECT_ORDER_SQL, (message.body,))
                    row = read.fetchone()
                    if row is not None:
                        write.execute(insert, row)
                        moved += 1
                queue.delete([m.receipt_handle for m in messages])
    finally:
        queue.close()
        oltp.close()
        warehouse.close()
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description="the seed's ingest API and store consumers (benchmark baseline)")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    state = LocalState.load(args.home)
    if state is None:
        raise SystemExit(f"nothing deployed under {args.home}")
    SeedIngest(state, args.port, args.consumers).serve(args.max_seconds)


if __name__ == "__main__":
    main()

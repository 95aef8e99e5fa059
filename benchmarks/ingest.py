"""ingest: orders/s from the HTTP API to committed OLTP rows, txpipe against the seed's algorithm.

Both get the same orders from the same client (`txpipe send`, requests of 500) on the same
queue emulator and OLTP database. txpipe: its runtime's API -> ingest (`send_message_batch`)
-> queue -> store pollers (batches of 100, one transaction each). The seed: one send_message
per order, one INSERT + COMMIT per row, one more send_message per stored row (benchmarks.seed).

Throughput is timed by the database's own clock, from the first order's accepted_at to the
last order's stored_at, so neither side is charged the client's start-up; the client's wall
time is reported beside it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg2 import sql

from benchmarks.data import SENT_COLUMNS, Check, make_orders, orders_checksum, table_checksum, write_orders
from benchmarks.seed import IDS_QUEUE
from benchmarks.stack import Stack
from txpipe_cli.local.target import free_port

SPAN_SQL = """SELECT count(*), EXTRACT(EPOCH FROM max(stored_at) - min(accepted_at))
FROM orders WHERE order_id LIKE %s"""


def _measure(stack: Stack, prefix: str, orders: list[dict[str, Any]], url: str | None,
             workdir: Path, timeout: float) -> tuple[dict[str, Any], Check]:
    path = write_orders(workdir / f"{prefix}.json", orders)
    args = ["send", str(path)] + (["--url", url] if url else [])
    started = time.monotonic()
    sent = stack.txpipe_json(*args, timeout=timeout)
    if sent["accepted"] != len(orders):
        raise RuntimeError(f"{prefix}: the API accepted {sent['accepted']} of {len(orders)} orders")
    # The rate comes from the database's clock (below), so a slow poll costs no precision, only less load.
    done = stack.wait_for("oltp", "SELECT count(*) FROM orders WHERE order_id LIKE %s", (prefix + "-%",),
                          len(orders), timeout=timeout, interval=0.25)
    oltp = stack.connect("oltp")
    try:
        with oltp.cursor() as cur:
            cur.execute(SPAN_SQL, (prefix + "-%",))
            count, span = cur.fetchone()
        actual = table_checksum(oltp, sql.Identifier("orders"), SENT_COLUMNS, sql.SQL("order_id LIKE %s"),
                                (prefix + "-%",))
    finally:
        oltp.close()
    span = max(float(span), 1e-6)
    metrics = {"orders": int(count), "seconds": round(span, 3), "per_s": round(count / span, 1),
               "client_wall_s": round(done - started, 3)}
    return metrics, Check(f"ingest/{prefix}", orders_checksum(orders), actual)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the seed API exited at start ({proc.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the seed API did not listen within 20 s")


def run(stack: Stack, *, txpipe_orders: int, seed_orders: int, customers: int, workdir: Path,
        timeout: float = 600) -> tuple[dict[str, Any], list[Check]]:
    checks: list[Check] = []

    stack.reset()
    txpipe, check = _measure(stack, "ing-tx", make_orders(txpipe_orders, customers, "ing-tx", seed=21), None,
                             workdir, timeout)
    checks.append(check)

    stack.reset()
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "benchmarks.seed", "--home", str(stack.home), "--port", str(port),
         "--max-seconds", str(timeout)],
        env=stack.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, proc)
        seed_list = make_orders(seed_orders, customers, "ing-seed", seed=22)
        seed, check = _measure(stack, "ing-seed", seed_list, f"http://127.0.0.1:{port}", workdir, timeout)
        checks.append(check)
        # The seed's store also queued every stored order's id for its sync: all of them, once.
        stack.wait_for("queue", "SELECT count(*) FROM queue_messages WHERE queue = %s", (IDS_QUEUE,),
                       len(seed_list), timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result = {"txpipe_per_s": txpipe["per_s"], "seed_per_s": seed["per_s"],
              "ratio_vs_seed": round(txpipe["per_s"] / seed["per_s"], 2), "txpipe": txpipe, "seed": seed}
    return result, checks

"""The fault harness's own parts (benchmarks/faults.py runs the trials): the profiles, a trial's row, and the
Harness every trial drives a deployment through - sending orders, counting them in OLTP and the warehouse by the
trial's own ids or price, settling (stored, synced, counted), finding the runtime and the postmaster, cutting a
database off. Its queries go through tests/support/database.py's `query`, the one the e2e tests use.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.stack import Stack, txpipe_executable
from tests.support.database import query
from txpipe_cli.local.pg import PgServer, find_bindir

CUSTOMERS = 2000
# What a trial's orders are counted by: an order_id prefix (ids the trial chose) or a retail_price (orders
# `txpipe send` names from their content: each trial's file has a price of its own).
Selector = str | float


@dataclass(frozen=True)
class Profile:
    name: str
    send_orders: int  # orders in each kill/re-run trial's file
    send_rate: int
    backlog: int  # rows in the outbox when sync-now is killed
    outage_seconds: float
    outage_rate: int  # orders/s sent through an outage
    flood_clients: int
    flood_requests: int  # per client
    hostile_bodies: int
    slow_clients: int


FULL = Profile("full", send_orders=5000, send_rate=500, backlog=200_000, outage_seconds=60, outage_rate=50,
               flood_clients=500, flood_requests=4, hostile_bodies=100, slow_clients=200)
SHORT = Profile("short", send_orders=1500, send_rate=500, backlog=100_000, outage_seconds=8, outage_rate=50,
                flood_clients=500, flood_requests=2, hostile_bodies=30, slow_clients=40)


@dataclass
class Row:
    trial: str
    accepted: int
    oltp: int
    warehouse: int
    doubled: int
    lost: int
    dead_letters: int
    note: str
    ok: bool


class Harness:
    """A deployed Stack and what every trial does to it: orders sent, counted by the trial's id prefix or price,
    settled (stored, synced, counted), processes found, a database cut off. The trials are faults.Trials' methods
    and benchmarks/fault_trials.py's functions."""

    def __init__(self, stack: Stack, profile: Profile, workdir: Path, log: Callable[[str], None]) -> None:
        self.stack, self.profile, self.workdir, self.log = stack, profile, workdir, log

    # ------------------------------------------------------------------ helpers

    def sql(self, database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """`statement`'s rows from one of the deployment's databases, as Stack.connect connects."""
        return query(self.stack.state.endpoint(database), statement, params, autocommit=True,
                     application_name="txpipe-bench")

    def order_file(self, name: str, count: int) -> tuple[Path, float]:
        """An NDJSON file of orders without ids, priced for this trial alone; returns it and that price, by which
        the trial's orders are counted (`txpipe send` names each from its content)."""
        import hashlib

        price = round(10 + (int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 900) / 100, 2)
        body = "".join(self.order_line(i, price) for i in range(count))
        path = self.workdir / f"{name}.ndjson"
        path.write_text(body)
        return path, price

    @staticmethod
    def order_line(i: int, price: float) -> str:
        return json.dumps({"customer_id": 1 + (i * 7919) % CUSTOMERS, "type": "veggie", "qty": 1 + i % 3,
                           "retail_price": price}) + "\n"

    def send(self, path: Path, *, rate: int | None = None, wait: bool = True) -> Any:
        args = [*txpipe_executable(), "send", str(path), "--json", "--batch", "50"]
        if rate:
            args += ["--rate", str(rate)]
        proc = subprocess.Popen(args, env=self.stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                                stdin=subprocess.DEVNULL, text=True)
        if not wait:
            return proc
        out, _ = proc.communicate(timeout=600)
        return json.loads(out) if out.strip() else {"accepted": 0}

    def counts(self, selector: Selector) -> tuple[int, int, int, int]:
        """(OLTP rows, OLTP distinct ids, warehouse rows, warehouse distinct ids) of a trial's orders."""
        where, params = (("order_id LIKE %s", (selector + "%",)) if isinstance(selector, str)
                         else ("retail_price = %s", (selector,)))
        oltp = self.sql("oltp", f"SELECT count(*), count(DISTINCT order_id) FROM orders WHERE {where}",  # noqa: S608
                        params)[0]
        wh = self.sql("warehouse", f"SELECT count(*), count(DISTINCT order_id) FROM orders_fact "  # noqa: S608
                                   f"WHERE {where}", params)[0]
        return oltp[0], oltp[1], wh[0], wh[1]

    def dead_letters(self) -> int:
        return int(self.sql("queue", "SELECT count(*) FROM queue_messages WHERE queue = 'orders-dlq'")[0][0])

    def wait_stored(self, prefix: Selector, want: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.counts(prefix)[1] >= want:
                return
            time.sleep(0.25)

    def settle(self, prefix: Selector, expected: int, accepted: int, note: str, ok: bool = True,
               wait: float = 120.0) -> Row:
        """Waits for the accepted orders to be stored, syncs, and counts."""
        self.wait_stored(prefix, accepted, wait)
        self.stack.txpipe_json("sync-now")
        rows, distinct, wh_rows, wh_distinct = self.counts(prefix)
        doubled = (rows - distinct) + (wh_rows - wh_distinct) + max(0, distinct - expected)
        lost = max(0, accepted - distinct) + max(0, distinct - wh_distinct)
        dead = self.dead_letters()
        ok = ok and doubled == 0 and lost == 0 and dead == 0
        return Row("", accepted, distinct, wh_distinct, doubled, lost, dead, note, ok)

    def runtime_pid(self) -> int:
        return self.stack.runtime_pid()

    def postmaster_pid(self) -> int | None:
        state = self.stack.state
        return PgServer(Path(state.pg_root), state.pg_port, state.pg_user, find_bindir()).postmaster_pid()

    def set_connections(self, database: str, allowed: bool) -> None:
        """An outage of one database: it refuses new connections and its sessions are cut."""
        from psycopg2 import sql

        self.stack.execute("queue", sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
            sql.Identifier(database), sql.SQL("true" if allowed else "false")))
        if not allowed:
            self.sql("queue", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                     (database,))

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return False

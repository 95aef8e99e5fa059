"""The two reporting views come from one snapshot of the warehouse, refreshed under live traffic (issue 15, item 3).

A sync runs about every second in a thread (the real run_sync, several committed batches a run) while the refresh
function refreshes the views again and again, as the daily refresh does under live traffic. After every refresh:

- the views agree state by state: sales_by_state summed per state gives state_sales' pizzas and gross sales;
- each holds exactly the fact rows of its snapshot (the rows a refresh stamped, orders_fact.snapshot_at at or before
  the views' own snapshot_at): pizzas, gross sales, orders and unique customers as each view defines them (per
  state; per state and pizza type), recomputed here from orders_fact;
- the report's "orders not in the views" (views_freshness' awaiting_refresh) is the fact rows beyond that snapshot,
  and the fact rows minus the orders state_sales holds, read in one snapshot with it.

On PostgreSQL the refresh function refreshes CONCURRENTLY in one transaction; on the Redshift path (redshift-connector
through the shim) each statement is its own transaction, as on Redshift. Before the snapshot stamp, each REFRESH read
whatever had committed when it started, and a batch committed between the two left them disagreeing.
Bounded: each test stops its traffic after REFRESHES refreshes or DEADLINE_SECONDS, whichever comes first.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from lambdas import refresh
from lambdas.core.db import connect_postgres
from lambdas.core.orders import PIZZA_TYPES
from lambdas.core.reporting import STATE_CODES, views_freshness
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse
from tests.integration.helpers import order, seed_customers, store_directly
from txpipe_cli.local.events import scheduled_event

CODES = sorted(STATE_CODES)
FIRST_CUSTOMER, CUSTOMERS = 1000, 3000  # ids apart from the Redshift-path fixtures' customers 1-4
HISTORY_ROWS = 300_000  # orders already in the warehouse: enough that a refresh takes a while, as at scale
REFRESHES = 8
DEADLINE_SECONDS = 40.0  # of traffic; the history and the checks add a few seconds more
# A sync run about every second, of four committed batches spread over it (as a run's batches take their time at
# scale): some batch commits every ~BATCH_PAUSE seconds, whenever a refresh runs.
SYNC_EVERY, ORDERS_PER_SYNC, SYNC_BATCH_ROWS, BATCH_PAUSE = 1.0, 120, 30, 0.2


def state_of(customer: int) -> str:
    return CODES[customer % len(CODES)]


def lay_down_history(execute: Callable[[str, tuple[Any, ...]], Any]) -> None:
    """HISTORY_ROWS orders of the customers straight into orders_fact (and in the views at their next refresh)."""
    execute(
        """INSERT INTO orders_fact (order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at,
                                    stored_at, loaded_at)
           SELECT 'history-' || g, c, (string_to_array(%s, ','))[1 + c %% %s],
                  (string_to_array(%s, ','))[1 + g %% %s], 1 + g %% 4, 9.99 + g %% 7,
                  now() - make_interval(secs => g), now() - make_interval(secs => g), now()
           FROM generate_series(1, %s) g, LATERAL (SELECT %s + g %% %s AS c) k""",
        (",".join(CODES), len(CODES), ",".join(PIZZA_TYPES), len(PIZZA_TYPES), HISTORY_ROWS, FIRST_CUSTOMER,
         CUSTOMERS))
    execute("ANALYZE orders_fact", ())


@dataclass
class LiveSync:
    """Stores ORDERS_PER_SYNC orders and runs the real sync about every SYNC_EVERY seconds, on its own thread and
    connections, until stopped; notes when each batch committed, and pauses BATCH_PAUSE after it (in run_sync's
    progress callback, which it calls once a batch is committed)."""

    dbs: Any
    connect_warehouse: Callable[[], Any]
    backend: Any
    runs: int = 0
    batches: int = 0
    commits: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-sync", daemon=True)

    def _run(self) -> None:
        rng = random.Random(15)
        oltp, warehouse = self.dbs.connect("oltp"), self.connect_warehouse()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                store_directly(self.dbs, [
                    order(f"live-{self.runs}-{i}", rng.randrange(FIRST_CUSTOMER, FIRST_CUSTOMER + CUSTOMERS),
                          rng.choice(PIZZA_TYPES), rng.randint(1, 5), rng.choice(("9.99", "12.50", "15.25")))
                    for i in range(ORDERS_PER_SYNC)])
                result = run_sync(oltp, warehouse, backend=self.backend, batch_rows=SYNC_BATCH_ROWS,
                                  progress=self._committed)
                self.runs += 1
                self.batches += result.batches
                self._stop.wait(max(0.0, SYNC_EVERY - (time.monotonic() - started)))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
        finally:
            oltp.close()
            warehouse.close()

    def _committed(self, _rows: int) -> None:
        self.commits.append(time.monotonic())
        self._stop.wait(BATCH_PAUSE)

    def __enter__(self) -> LiveSync:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def rows(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]


def views_disagree(conn: Any) -> tuple[int, int, list[str]]:
    """(sales_by_state's pizzas, state_sales' pizzas, the states whose pizzas or gross sales differ)."""
    by_type = {s: (int(p), Decimal(g)) for s, p, g in rows(
        conn, "SELECT state, sum(total_pizzas), sum(gross_sales) FROM sales_by_state GROUP BY state")}
    by_state = {s: (int(p), Decimal(g)) for s, p, g in rows(
        conn, "SELECT state, total_pizzas, gross_sales FROM state_sales")}
    differ = sorted(s for s in set(by_type) | set(by_state) if by_type.get(s) != by_state.get(s))
    return (sum(p for p, _ in by_type.values()), sum(p for p, _ in by_state.values()), differ)


def snapshot_mismatches(conn: Any) -> list[str]:
    """What in the views is not exactly the fact rows of their snapshot (empty: nothing). Rows at or before the
    snapshot never change after it (a stamp is never rewritten, newer rows are unstamped), so this reads them
    while the sync goes on."""
    [(by_type_mark, by_state_mark)] = rows(
        conn, "SELECT (SELECT max(snapshot_at) FROM sales_by_state), (SELECT max(snapshot_at) FROM state_sales)")
    if by_type_mark != by_state_mark:
        return [f"the views hold different snapshots: {by_type_mark} and {by_state_mark}"]
    in_snapshot = "FROM orders_fact WHERE snapshot_at <= %s"
    expected_states = {r[0]: r[1:] for r in rows(
        conn, f"SELECT state, sum(qty), sum(qty * retail_price), count(DISTINCT customer_id), count(*) {in_snapshot} "
              "GROUP BY state", (by_state_mark,))}
    states = {r[0]: r[1:] for r in rows(
        conn, "SELECT state, total_pizzas, gross_sales, unique_customers, orders FROM state_sales")}
    expected_types = {r[:2]: r[2:] for r in rows(
        conn, f"SELECT state, pizza_type, sum(qty), sum(qty * retail_price), count(DISTINCT customer_id) {in_snapshot} "
              "GROUP BY state, pizza_type", (by_state_mark,))}
    types = {r[:2]: r[2:] for r in rows(
        conn, "SELECT state, pizza_type, total_pizzas, gross_sales, unique_customers FROM sales_by_state")}
    problems = [f"state_sales {s}: {states.get(s)} != {expected_states.get(s)}"
                for s in sorted(set(states) | set(expected_states)) if states.get(s) != expected_states.get(s)]
    problems += [f"sales_by_state {k}: {types.get(k)} != {expected_types.get(k)}"
                 for k in sorted(set(types) | set(expected_types)) if types.get(k) != expected_types.get(k)]
    return problems


class OneSnapshot:
    """A psycopg2 connection in REPEATABLE READ whose commit is held off: views_freshness' reads and the test's own
    read share one snapshot while the sync commits around them."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def cursor(self) -> Any:
        return self.conn.cursor()

    def commit(self) -> None:
        pass


def freshness_mismatch(endpoint: Any) -> tuple[int, str | None]:
    """(orders not in the views, what is wrong with that count or None): views_freshness against the fact rows
    beyond the views' snapshot and against the fact rows minus the orders state_sales holds, in one snapshot."""
    conn = connect_postgres(endpoint)
    try:
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ)
        awaiting = views_freshness(OneSnapshot(conn))["awaiting_refresh"]
        [(beyond, unheld)] = rows(conn, """
            SELECT (SELECT count(*) FROM orders_fact
                    WHERE snapshot_at IS NULL OR snapshot_at > (SELECT max(snapshot_at) FROM state_sales)),
                   (SELECT count(*) FROM orders_fact) - (SELECT sum(orders) FROM state_sales)""")
        conn.rollback()
    finally:
        conn.close()
    wrong = None if awaiting == beyond == unheld else f"awaiting {awaiting}, beyond the snapshot {beyond}, " \
                                                       f"fact rows not in state_sales {unheld}"
    return awaiting, wrong


def refresh_under_live_sync(dbs: Any, reader: Callable[[], Any], reader_endpoint: Any, live: LiveSync) -> dict:
    """Refreshes through the refresh function while `live` syncs; checks the views after each refresh."""
    disagreements, mismatches, windows, awaiting, held = [], [], [], [], []
    deadline = time.monotonic() + DEADLINE_SECONDS
    rng = random.Random(3)
    conn = reader()
    try:
        with live:
            while len(windows) < REFRESHES and time.monotonic() < deadline and not live.errors:
                time.sleep(rng.uniform(0.1, 0.6))  # not in step with the sync
                started = time.monotonic()
                assert refresh.handler(scheduled_event("refresh"), None) == {
                    "refreshed": ["sales_by_state", "state_sales"]}
                windows.append((started, time.monotonic()))
                held.append(int(rows(conn, "SELECT sum(orders) FROM state_sales")[0][0]))
                by_type, by_state, differ = views_disagree(conn)
                if differ:
                    disagreements.append(f"refresh {len(windows)}: {by_type:,} vs {by_state:,} pizzas, "
                                         f"{len(differ)} of 51 states differ")
                mismatches += [f"refresh {len(windows)}: {p}" for p in snapshot_mismatches(conn)[:3]]
                count, wrong = freshness_mismatch(reader_endpoint)
                awaiting.append(count)
                if wrong:
                    mismatches.append(f"refresh {len(windows)}: {wrong}")
                conn.commit()
    finally:
        conn.close()
    raced = sum(any(start < at < end for at in live.commits) for start, end in windows)
    return {"refreshes": len(windows), "syncs": live.runs, "batches": live.batches, "raced": raced,
            "disagreements": disagreements, "mismatches": mismatches, "awaiting": awaiting, "held": held,
            "errors": live.errors}


def assert_views_agreed(outcome: dict) -> None:
    print(f"\n{outcome['refreshes']} refreshes, {outcome['syncs']} syncs ({outcome['batches']} batches), "
          f"{outcome['raced']} refreshes with a batch committed while they ran; not in the views after each: "
          f"{outcome['awaiting']}")
    assert not outcome["errors"], outcome["errors"]
    assert outcome["refreshes"] >= REFRESHES // 2, outcome
    assert outcome["raced"] >= 1, f"no sync committed during a refresh: the traffic did not exercise the race {outcome}"
    assert outcome["disagreements"] == [], "\n".join(outcome["disagreements"])
    assert outcome["mismatches"] == [], "\n".join(outcome["mismatches"])
    assert any(outcome["awaiting"]), "orders kept arriving: some refresh must have left some out"
    held = outcome["held"]
    assert all(later > earlier for earlier, later in zip(held, held[1:], strict=False)), (
        f"each refresh takes in the orders synced since the one before: {held}")


def query_without_rows(dbs: Any, sql: str, params: tuple[Any, ...]) -> None:
    conn = dbs.connect("warehouse", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def seed(dbs: Any) -> None:
    seed_customers(dbs, [[c, state_of(c), f"c{c}"] for c in range(FIRST_CUSTOMER, FIRST_CUSTOMER + CUSTOMERS)])


@pytest.mark.timeout(120)
def test_views_agree_under_live_sync_on_postgres(handler_env):
    """PostgreSQL: the refresh function (REFRESH ... CONCURRENTLY, one transaction) against a sync every second."""
    dbs = handler_env
    seed(dbs)
    lay_down_history(lambda sql, params: query_without_rows(dbs, sql, params))
    outcome = refresh_under_live_sync(
        dbs, lambda: dbs.connect("warehouse"), dbs.endpoints["warehouse"],
        LiveSync(dbs, lambda: dbs.connect("warehouse"), PostgresWarehouse()))
    assert_views_agreed(outcome)


@pytest.mark.timeout(120)
def test_views_agree_under_live_sync_on_the_redshift_path(handler_env, rs_handler_env):
    """The Redshift path: the refresh function with kind redshift over redshift-connector (each statement its own
    transaction) against the Redshift warehouse's own sync (multi-row INSERT loads) every second."""
    dbs, rs_target = handler_env, rs_handler_env
    seed(dbs)
    lay_down_history(rs_target.query)
    outcome = refresh_under_live_sync(
        dbs, lambda: connect_postgres(rs_target.direct), rs_target.direct,
        LiveSync(dbs, rs_target.connect, RedshiftWarehouse()))
    assert_views_agreed(outcome)

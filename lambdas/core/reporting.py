"""Read side: refreshing the views, the analysts' state report, the SLA report.

Warehouse queries here run on Redshift and PostgreSQL alike. Results are plain
dicts of JSON-ready values: they travel back from the ops function as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lambdas.core import history
from lambdas.core.schema import (
    MATERIALIZED_VIEWS,
    NOT_IN_VIEWS_SQL,
    RECORD_REFRESH_SQL,
    REFRESH_STATEMENTS,
    TAKE_SNAPSHOT_SQL,
    state_populations,
)

STATE_CODES = frozenset(code for code, _, _ in state_populations())


def refresh_views(warehouse: Any, statements: Sequence[str] = REFRESH_STATEMENTS, *,
                  each_commits: bool = True) -> list[str]:
    """Takes a snapshot of the fact table (stamps the rows no refresh has taken yet), refreshes both views from
    it with `statements`, and records the refresh under the snapshot's time (schema.TAKE_SNAPSHOT_SQL): the
    views agree whatever the sync commits meanwhile.

    Which statements run, and in what transactions, is the warehouse's to say (Warehouse.refresh passes its
    refresh_statements and Capabilities.refresh_commits). `each_commits` (Redshift, where each REFRESH is a
    transaction of its own; the default, which every warehouse allows): each statement is committed as it
    runs, the stamp first, so each REFRESH sees it. Otherwise one transaction (PostgreSQL, with REFRESH ...
    CONCURRENTLY), so readers are never locked out and see the old views, and the old count of what they
    lack, until it commits."""
    taken_at = datetime.now(UTC)
    with warehouse.cursor() as cur:
        cur.execute(TAKE_SNAPSHOT_SQL, (taken_at,))
        for statement in statements:
            if each_commits:
                warehouse.commit()
            cur.execute(statement)
        if each_commits:
            warehouse.commit()
        cur.execute(RECORD_REFRESH_SQL, (taken_at,))
    warehouse.commit()
    return list(MATERIALIZED_VIEWS)


def views_freshness(warehouse: Any) -> dict[str, Any]:
    """When the views were last refreshed (None: not since they were created) and how many orders loaded
    into the warehouse they do not hold yet: exactly the fact rows beyond the views' snapshot."""
    with warehouse.cursor() as cur:
        cur.execute("SELECT max(refreshed_at) FROM view_refreshes")
        refreshed_at = cur.fetchone()[0]
        cur.execute(NOT_IN_VIEWS_SQL)
        awaiting_refresh = cur.fetchone()[0]
    warehouse.commit()
    return {"views_refreshed_at": refreshed_at.isoformat() if refreshed_at else None,
            "awaiting_refresh": int(awaiting_refresh)}


def awaiting_sync(oltp: Any) -> int:
    """Orders stored in OLTP that the sync has still to move to the warehouse."""
    with oltp.cursor() as cur:
        cur.execute("SELECT count(*) FROM outbox")
        count = cur.fetchone()[0]
    oltp.commit()
    return int(count)


def _num(value: Any, places: int = 2) -> float:
    return float(round(Decimal(value), places)) if value is not None else 0.0


def _exact(value: Any) -> str:
    """A decimal as the warehouse computed it, every digit, never in exponent form ("0.00000511...", not
    5.11e-06): gross sales per capita is a few millionths of a dollar, and a float would round it."""
    return format(Decimal(value), "f") if value is not None else "0"


def _top(rows: list[tuple[Any, Any, Any]]) -> list[dict[str, Any]]:
    return [{"pizza_type": name, "total_pizzas": int(pizzas), "gross_sales": _num(sales)}
            for name, pizzas, sales in rows]


def state_report(warehouse: Any, state: str, ranked: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One state's row of all_states (name, population, rank among states, totals) and its top 3 pizza
    types (by pizzas, then gross sales, then name). `ranked`: all_states' answer, when the caller has it."""
    if state not in STATE_CODES:
        raise ValueError(f"unknown state {state!r}: use a USPS code such as TX (50 states and DC)")
    row = next(r for r in (ranked if ranked is not None else all_states(warehouse)) if r["state"] == state)
    with warehouse.cursor() as cur:
        cur.execute(
            """SELECT pizza_type, total_pizzas, gross_sales FROM sales_by_state WHERE state = %s
               ORDER BY total_pizzas DESC, gross_sales DESC, pizza_type ASC LIMIT 3""",
            (state,),
        )
        top = cur.fetchall()
    warehouse.commit()
    return {**row, "top_pizzas": _top(top)}


def all_states(warehouse: Any) -> list[dict[str, Any]]:
    """Every state (the 50 and DC, those without sales too), by gross sales, then pizzas, then code."""
    with warehouse.cursor() as cur:
        cur.execute(
            """SELECT p.state, p.state_name, p.population, s.total_pizzas, s.gross_sales, s.gross_sales_per_capita,
                      s.unique_customers
               FROM state_population p LEFT JOIN state_sales s ON s.state = p.state""")
        rows = cur.fetchall()
    warehouse.commit()
    states = [{"state": code, "state_name": name, "population": int(population),
               "total_pizzas": int(pizzas or 0), "gross_sales": _num(gross), "gross_sales_per_capita": _exact(per),
               "unique_customers": int(customers or 0)}
              for code, name, population, pizzas, gross, per, customers in rows]
    states.sort(key=lambda s: (-s["gross_sales"], -s["total_pizzas"], s["state"]))
    for rank, state in enumerate(states, start=1):
        state["rank"] = rank
    return states


# Every state's top 3 pizza types in one read (report --all): ranked within each state as state_report ranks
# them, at most 3 rows a state whatever the menu grows to.
TOP_PIZZAS_SQL = """SELECT state, pizza_type, total_pizzas, gross_sales
FROM (SELECT state, pizza_type, total_pizzas, gross_sales,
             ROW_NUMBER() OVER (PARTITION BY state
                                ORDER BY total_pizzas DESC, gross_sales DESC, pizza_type ASC) AS place
      FROM sales_by_state) AS ranked
WHERE place <= 3
ORDER BY state, place"""


def all_states_report(warehouse: Any) -> list[dict[str, Any]]:
    """all_states, each with its top 3 pizza types as state_report gives them: one shape for one state and all."""
    states = all_states(warehouse)
    with warehouse.cursor() as cur:
        cur.execute(TOP_PIZZAS_SQL)
        rows = cur.fetchall()
    warehouse.commit()
    top: dict[str, list[tuple[Any, Any, Any]]] = {}
    for state, name, pizzas, sales in rows:
        top.setdefault(state, []).append((name, pizzas, sales))
    return [{**state, "top_pizzas": _top(top.get(state["state"], []))} for state in states]


# What the SLA is about: live orders. History loaded by `txpipe seed --history` is old by design (its accepted_at
# goes back --days days, its load is now), so it is left out unless asked for; it is known by its order_ids.
# The "history" parameter of each query is HISTORY_ORDER_IDS, or NO_ORDER_IDS when history counts: no order_id
# is empty (1 to 64 characters), so `NOT LIKE ''` leaves out nothing.
HISTORY_ORDER_IDS = history.ORDER_ID_LIKE
NO_ORDER_IDS = ""

LAG_SQL = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY lag),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
       max(lag),
       sum(CASE WHEN lag > %s THEN 1 ELSE 0 END)
FROM (SELECT EXTRACT(EPOCH FROM loaded_at) - EXTRACT(EPOCH FROM accepted_at) AS lag
      FROM orders_fact WHERE accepted_at >= %s AND order_id NOT LIKE %s) AS lags"""


def sla_report(oltp: Any, warehouse: Any, *, sla_seconds: float, since_seconds: float | None,
               include_history: bool = False, now: datetime | None = None) -> dict[str, Any]:
    """Lag = warehouse load time - API accept time. A breach is an order synced later than the
    SLA, or still pending for longer than it. Orders are those accepted in the window (`since_seconds`;
    None: all of them), read by the accepted_at indexes, so the cost follows the window, not the history;
    pending ones are counted whenever accepted, since the oldest is the worst breach.

    Orders loaded by `seed --history` count only with `include_history`; either way "history" says how many
    of them the window holds (those in OLTP accepted in it, and those pending whenever accepted) and how
    many of those are pending."""
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=since_seconds) if since_seconds else datetime(1970, 1, 1, tzinfo=UTC)
    late = now - timedelta(seconds=sla_seconds)
    with oltp.cursor() as cur:
        cur.execute("""SELECT count(*), count(*) FILTER (WHERE order_id LIKE %(history)s)
                       FROM orders WHERE accepted_at >= %(since)s""",
                    {"history": HISTORY_ORDER_IDS, "since": since})
        oltp_orders, oltp_history = cur.fetchone()
        cur.execute(
            """SELECT count(*) FILTER (WHERE NOT h), min(accepted_at) FILTER (WHERE NOT h),
                      count(*) FILTER (WHERE NOT h AND accepted_at < %(late)s),
                      count(*) FILTER (WHERE h), min(accepted_at) FILTER (WHERE h),
                      count(*) FILTER (WHERE h AND accepted_at < %(late)s),
                      count(*) FILTER (WHERE h AND accepted_at < %(since)s)
               FROM (SELECT accepted_at, order_id LIKE %(history)s AS h FROM outbox) AS pending""",
            {"late": late, "since": since, "history": HISTORY_ORDER_IDS})
        pending, oldest, pending_breaches, history_pending, history_oldest, history_breaches, history_before = (
            cur.fetchone())
    oltp.commit()
    left_out = NO_ORDER_IDS if include_history else HISTORY_ORDER_IDS
    with warehouse.cursor() as cur:
        cur.execute(LAG_SQL, (sla_seconds, since, left_out))
        synced, p50, p95, p99, lag_max, late_synced = cur.fetchone()
        cur.execute("SELECT count(*) FROM orders_fact WHERE accepted_at >= %s AND order_id NOT LIKE %s",
                    (since, left_out))
        warehouse_orders = cur.fetchone()[0]
        cur.execute("SELECT max(finished_at) FROM sync_runs")  # on Redshift: the last sync that moved orders
        last_sync = cur.fetchone()[0]
    warehouse.commit()
    if include_history:
        pending += history_pending
        pending_breaches += history_breaches
        oldest = min(filter(None, (oldest, history_oldest)), default=None)
    else:
        oltp_orders -= oltp_history
    return {
        "sla_seconds": sla_seconds,
        "oltp_orders": int(oltp_orders),
        "warehouse_orders": int(warehouse_orders),
        "synced": int(synced),
        "pending": int(pending),
        "oldest_pending_seconds": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
        "lag_seconds": {k: round(float(v), 3) if v is not None else None
                        for k, v in (("p50", p50), ("p95", p95), ("p99", p99), ("max", lag_max))},
        "breaches": int(late_synced or 0) + int(pending_breaches or 0),
        "last_sync_at": last_sync.isoformat() if last_sync else None,
        # orders of seed --history in the window (OLTP's, and the pending ones whenever accepted)
        "history": {"orders": int(oltp_history) + int(history_before), "pending": int(history_pending),
                    "counted": include_history},
    }


# Tables past this many rows are counted from the planner's statistics (pg_class.reltuples, kept by
# ANALYZE and autovacuum): an exact count(*) reads the whole table, and status must not slow as history
# grows. Only for tables that only grow (orders, customers): the outbox, which empties, is always counted.
EXACT_COUNT_LIMIT = 1_000_000
_COUNTS = {"orders": "SELECT count(*) FROM orders", "customers": "SELECT count(*) FROM customers"}


def _count(cur: Any, table: str) -> tuple[int, bool]:
    """(rows, estimated): exact below EXACT_COUNT_LIMIT, else the statistics' estimate."""
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = CAST(%s AS regclass)", (table,))
    estimate = cur.fetchone()[0]
    if estimate is not None and estimate > EXACT_COUNT_LIMIT:
        return int(estimate), True
    cur.execute(_COUNTS[table])
    return int(cur.fetchone()[0]), False


def oltp_status(oltp: Any) -> dict[str, Any]:
    with oltp.cursor() as cur:
        cur.execute("SELECT count(*), min(accepted_at) FROM outbox")
        backlog, oldest = cur.fetchone()
        cur.execute("SELECT count(*) FROM rejected_orders")
        rejected = cur.fetchone()[0]
        (orders, orders_estimated), (customers, customers_estimated) = _count(cur, "orders"), _count(cur, "customers")
    oltp.commit()
    return {
        "orders": orders,
        "customers": customers,
        "estimated": [name for name, estimated in (("orders", orders_estimated), ("customers", customers_estimated))
                      if estimated],
        "outbox_backlog": int(backlog),
        "oldest_pending_at": oldest.isoformat() if oldest else None,
        "rejected_orders": int(rejected),
    }


def last_sync(warehouse: Any) -> dict[str, Any] | None:
    """The warehouse's last recorded sync run. A warehouse that bills by wake (Redshift) records only the runs
    that moved orders (a run with nothing to move does not touch it: lambdas.core.sync), so there this is the
    last sync that moved orders; PostgreSQL records every run, idle ones too."""
    with warehouse.cursor() as cur:
        cur.execute("SELECT finished_at, synced, pending FROM sync_runs ORDER BY finished_at DESC LIMIT 1")
        row = cur.fetchone()
    warehouse.commit()
    if not row:
        return None
    return {"finished_at": row[0].isoformat(), "synced": int(row[1]), "pending": int(row[2])}

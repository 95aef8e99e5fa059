"""State report and SLA report over real synced data, and the ops function's actions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg2.errors
import pytest

from lambdas import ops, refresh
from lambdas.core import schema
from lambdas.core.reporting import refresh_views, state_report
from lambdas.core.schema import state_populations
from tests.integration.helpers import order, query, seed_customers, store_directly, sync_once
from tests.integration.helpers import sla_once as sla
from txpipe_cli.local.events import scheduled_event

POPULATION = {code: population for code, _, population in state_populations()}

CUSTOMERS = [[1, "TX", "A"], [2, "TX", "B"], [3, "TX", "C"], [4, "CA", "D"], [5, "NY", "E"]]
# (order_id, customer, pizza, qty, price): TX has 16 pizzas for 149.00 from 3 customers.
ORDERS = [
    ("tx-1", 1, "cheese", 3, "10.00"),      # cheese: 3 pizzas, 30.00
    ("tx-2", 1, "pepperoni", 2, "12.00"),   # customer 1 bought two types
    ("tx-3", 2, "pepperoni", 1, "12.00"),   # pepperoni: 3 pizzas, 36.00
    ("tx-4", 2, "supreme", 3, "9.00"),      # supreme: 3 pizzas, 27.00
    ("tx-5", 3, "veggie", 3, "12.00"),      # veggie: 3 pizzas, 36.00 (ties pepperoni: name decides)
    ("tx-6", 3, "meat lover", 4, "5.00"),   # meat lover: most pizzas, least money
    ("ca-1", 4, "cheese", 2, "10.50"),
    ("ny-1", 5, "veggie", 1, "11.00"),
]


def sync_all(dbs) -> None:
    assert sync_once(dbs).pending == 0


def report(dbs, state: str) -> dict:
    conn = dbs.connect("warehouse")
    try:
        return state_report(conn, state)
    finally:
        conn.close()


def refresh_now(dbs) -> list[str]:
    conn = dbs.connect("warehouse")
    try:
        return refresh_views(conn)
    finally:
        conn.close()


@pytest.fixture
def sales(clean):
    """The ORDERS above stored, synced and the views refreshed."""
    seed_customers(clean, CUSTOMERS)
    store_directly(clean, [order(oid, c, p, q, price) for oid, c, p, q, price in ORDERS])
    sync_all(clean)
    assert refresh_now(clean) == ["sales_by_state", "state_sales"]
    return clean


def test_state_report_totals(sales):
    """TX totals: pizzas = Σqty, gross = Σqty*price, per capita = gross / TX population."""
    tx = [o for o in ORDERS if o[0].startswith("tx")]
    pizzas = sum(q for _, _, _, q, _ in tx)
    gross = sum(q * Decimal(p) for _, _, _, q, p in tx)
    assert (pizzas, gross) == (16, Decimal("149.00"))
    result = report(sales, "TX")
    assert result["state"] == "TX"
    assert result["total_pizzas"] == pizzas
    assert result["gross_sales"] == float(gross)
    # exact: the warehouse's decimal as a string (issue 16), equal to the division to its last digit
    per_capita = Decimal(result["gross_sales_per_capita"])
    assert per_capita > 0 and abs(per_capita - gross / POPULATION["TX"]) < Decimal("1e-18")


def test_unique_customers_counted_once_per_state(sales):
    """A customer who bought two pizza types counts once in the state total (3 in TX, not the per-type sum 6)."""
    result = report(sales, "TX")
    assert result["unique_customers"] == 3
    per_type = query(sales, "warehouse", "SELECT sum(unique_customers) FROM sales_by_state WHERE state = 'TX'")
    assert per_type == [(6,)]  # what summing the per-type rows would wrongly give
    assert report(sales, "CA")["unique_customers"] == 1


def test_top_three_ordered_by_pizzas_then_gross_then_name(sales):
    """Top 3: most pizzas first; ties broken by gross sales, then by name (pepperoni before veggie)."""
    assert report(sales, "TX")["top_pizzas"] == [
        {"pizza_type": "meat lover", "total_pizzas": 4, "gross_sales": 20.0},
        {"pizza_type": "pepperoni", "total_pizzas": 3, "gross_sales": 36.0},
        {"pizza_type": "veggie", "total_pizzas": 3, "gross_sales": 36.0},
    ]


def test_other_states_report_their_own_sales(sales):
    """Each state reports only the orders of its customers, with its name, population and rank (TX, 149.00,
    first; CA, 21.00, second; NY, 11.00, third)."""
    assert report(sales, "CA") == {
        "state": "CA", "state_name": "California", "population": POPULATION["CA"], "rank": 2,
        "total_pizzas": 2, "gross_sales": 21.0,
        "gross_sales_per_capita": query(sales, "warehouse", "SELECT gross_sales_per_capita::text FROM state_sales"
                                                            " WHERE state = 'CA'")[0][0], "unique_customers": 1,
        "top_pizzas": [{"pizza_type": "cheese", "total_pizzas": 2, "gross_sales": 21.0}],
    }


def test_state_without_sales_reports_zeros(sales):
    """A valid state with no sales returns zero totals and an empty top list."""
    wy = report(sales, "WY")
    assert wy == {"state": "WY", "state_name": "Wyoming", "population": POPULATION["WY"], "rank": wy["rank"],
                  "total_pizzas": 0, "gross_sales": 0.0, "gross_sales_per_capita": "0", "unique_customers": 0,
                  "top_pizzas": []}
    assert 4 <= wy["rank"] <= 51  # after the three states with sales; ties broken by code


@pytest.mark.parametrize("state", ["ZZ", "", "TEX", "PR"])
def test_unknown_state_raises(sales, state):
    """A code that is not one of the 50 states or DC raises ValueError."""
    with pytest.raises(ValueError, match="unknown state"):
        report(sales, state)


def test_dc_is_a_valid_state(clean):
    """DC is in the population data and can be reported."""
    assert "DC" in POPULATION and len(POPULATION) == 51
    assert report(clean, "DC")["total_pizzas"] == 0


def test_views_change_only_when_refreshed(clean):
    """Synced orders do not show in the report until the views are refreshed."""
    seed_customers(clean, CUSTOMERS)
    store_directly(clean, [order("a", 1, "cheese", 2, "10.00")])
    sync_all(clean)
    assert report(clean, "TX")["total_pizzas"] == 0
    refresh_now(clean)
    assert report(clean, "TX")["total_pizzas"] == 2
    store_directly(clean, [order("b", 2, "cheese", 5, "10.00")])
    sync_all(clean)
    assert report(clean, "TX")["total_pizzas"] == 2
    refresh_now(clean)
    after = report(clean, "TX")
    assert (after["total_pizzas"], after["gross_sales"], after["unique_customers"]) == (7, 70.0, 2)


def test_refresh_handler_refreshes_views(handler_env):
    """The refresh function, given a scheduled event, refreshes both views so the report sees synced orders."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, [order("a", 4, "supreme", 3, "8.00")])
    sync_all(handler_env)
    assert report(handler_env, "CA")["total_pizzas"] == 0
    assert refresh.handler(scheduled_event("refresh"), None) == {"refreshed": ["sales_by_state", "state_sales"]}
    assert report(handler_env, "CA")["gross_sales"] == 24.0


# --------------------------------------------------------------------------- SLA report

SLA_KEYS = {"sla_seconds", "oltp_orders", "warehouse_orders", "synced", "pending", "oldest_pending_seconds",
            "lag_seconds", "breaches", "last_sync_at", "history"}


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def lagged(clean):
    """Orders accepted 1 to 20 minutes ago, synced now; then two pending ones (30 min and 10 s old)."""
    seed_customers(clean, CUSTOMERS)
    start = datetime.now(UTC)
    ages_minutes = [20, 18, 12, 9, 7, 5, 4, 3, 2, 1]
    store_directly(clean, [order(f"s-{m}", 1 + m % 5, accepted_at=start - timedelta(minutes=m)) for m in ages_minutes])
    sync_all(clean)
    store_directly(clean, [order("pending-old", 2, accepted_at=start - timedelta(minutes=30)),
                           order("pending-new", 3, accepted_at=start - timedelta(seconds=10))])
    return clean


def fact_lags(dbs, since: datetime | None = None) -> list[float]:
    rows = query(dbs, "warehouse", "SELECT accepted_at, loaded_at FROM orders_fact")
    return [(loaded - accepted).total_seconds() for accepted, loaded in rows if since is None or accepted >= since]


def test_sla_report_matches_python(lagged):
    """Percentiles, max, counts and breaches of the SLA report match values computed from orders_fact."""
    now = datetime.now(UTC)
    result = sla(lagged, sla_seconds=600, since_seconds=None, now=now)
    assert set(result) == SLA_KEYS
    assert set(result["lag_seconds"]) == {"p50", "p95", "p99", "max"}
    lags = fact_lags(lagged)
    assert len(lags) == 10
    for key, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert result["lag_seconds"][key] == pytest.approx(percentile_cont(lags, fraction), abs=1e-3)
    assert result["lag_seconds"]["max"] == pytest.approx(max(lags), abs=1e-3)
    late = sum(1 for lag in lags if lag > 600)
    assert late == 3  # the orders accepted 20, 18 and 12 minutes ago
    assert result["breaches"] == late + 1  # plus the pending order 30 minutes old
    assert result["sla_seconds"] == 600
    assert (result["oltp_orders"], result["warehouse_orders"], result["synced"], result["pending"]) == (12, 10, 10, 2)
    oldest = query(lagged, "oltp", "SELECT accepted_at FROM orders WHERE order_id = 'pending-old'")[0][0]
    assert result["oldest_pending_seconds"] == pytest.approx((now - oldest).total_seconds(), abs=1e-3)
    last = query(lagged, "warehouse", "SELECT max(finished_at) FROM sync_runs")[0][0]
    assert result["last_sync_at"] == last.isoformat()


def test_sla_report_since_filters(lagged):
    """since_seconds keeps only orders accepted within the window for lags and counts; pending orders
    count whenever accepted (the oldest is the worst breach)."""
    now = datetime.now(UTC)
    result = sla(lagged, sla_seconds=270, since_seconds=600, now=now)
    since = now - timedelta(seconds=600)
    lags = fact_lags(lagged, since)
    assert len(lags) == 7  # accepted 9, 7, 5, 4, 3, 2 and 1 minutes ago
    assert result["synced"] == len(lags)
    assert result["lag_seconds"]["max"] == pytest.approx(max(lags), abs=1e-3)
    assert result["lag_seconds"]["p50"] == pytest.approx(percentile_cont(lags, 0.5), abs=1e-3)
    assert result["pending"] == 2  # the 30-minute-old pending order too, though accepted before the window
    assert result["breaches"] == sum(1 for lag in lags if lag > 270) + 1 == 4  # 9, 7, 5 minutes late; pending 30
    assert (result["oltp_orders"], result["warehouse_orders"]) == (8, 7)  # 7 synced + the 10-second-old pending


def test_sla_report_with_nothing(clean):
    """With no orders at all the SLA report has zero counts, null percentiles and no last sync."""
    result = sla(clean, sla_seconds=60, since_seconds=None)
    assert result == {"sla_seconds": 60, "oltp_orders": 0, "warehouse_orders": 0, "synced": 0, "pending": 0,
                      "oldest_pending_seconds": 0.0,
                      "lag_seconds": {"p50": None, "p95": None, "p99": None, "max": None},
                      "breaches": 0, "last_sync_at": None,
                      "history": {"orders": 0, "pending": 0, "counted": False}}


def test_sla_pending_breach_depends_on_age(clean):
    """A pending order counts as a breach only once it is older than the SLA."""
    seed_customers(clean, CUSTOMERS)
    accepted = datetime.now(UTC) - timedelta(seconds=100)
    store_directly(clean, [order("p", 1, accepted_at=accepted)])
    assert sla(clean, sla_seconds=60, since_seconds=None, now=accepted + timedelta(seconds=59))["breaches"] == 0
    assert sla(clean, sla_seconds=60, since_seconds=None, now=accepted + timedelta(seconds=61))["breaches"] == 1


# --------------------------------------------------------------------------- ops function


def test_ops_report_action(handler_env):
    """The ops function's report action returns the state report of the refreshed views."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, [order("a", 1, "veggie", 2, "11.00"), order("b", 2, "veggie", 1, "11.00")])
    sync_all(handler_env)
    refresh_now(handler_env)
    answer = ops.handler({"action": "report", "states": ["TX"]}, None)
    result = answer["states"][0]
    assert result == report(handler_env, "TX")
    assert answer["freshness"]["awaiting_refresh"] == 0 and answer["freshness"]["awaiting_sync"] == 0
    assert (result["total_pizzas"], result["gross_sales"], result["unique_customers"]) == (3, 33.0, 2)


def test_report_says_how_fresh_the_views_are(handler_env):
    """Before any refresh the views say so; orders in OLTP count as awaiting the sync, orders synced since
    the refresh as awaiting the refresh, and a refresh brings both to nought with its time recorded."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, [order(oid, c, p, q, price) for oid, c, p, q, price in ORDERS[:5]])
    freshness = ops.handler({"action": "report", "all": True}, None)["freshness"]
    assert freshness == {"views_refreshed_at": None, "awaiting_refresh": 0, "awaiting_sync": 5, "last_sync_at": None}
    sync_all(handler_env)
    store_directly(handler_env, [order(oid, c, p, q, price) for oid, c, p, q, price in ORDERS[5:]])
    freshness = ops.handler({"action": "report", "states": ["NY"]}, None)["freshness"]
    assert (freshness["awaiting_refresh"], freshness["awaiting_sync"]) == (5, 3)
    before = datetime.now(UTC)
    refresh_now(handler_env)
    freshness = ops.handler({"action": "report", "states": ["NY"]}, None)["freshness"]
    assert (freshness["awaiting_refresh"], freshness["awaiting_sync"]) == (0, 3)
    assert before <= datetime.fromisoformat(freshness["views_refreshed_at"]) <= datetime.now(UTC)


def test_report_answers_with_oltp_down(handler_env, monkeypatch):
    """The report reads the warehouse: with OLTP unreachable it still answers, its pending count left out
    with the reason."""
    monkeypatch.setenv("TXPIPE_OLTP_PORT", "1")
    from lambdas.core import db
    db.drop_cached("oltp")
    answer = ops.handler({"action": "report", "states": ["TX"]}, None)
    assert answer["states"][0]["state"] == "TX"
    assert answer["freshness"]["awaiting_sync"] is None and answer["freshness"]["awaiting_sync_error"]


def test_ops_report_unknown_state_is_an_error_response(handler_env):
    """An unknown state in the report action comes back as {'error': ...}, not an exception."""
    result = ops.handler({"action": "report", "states": ["TX", "XX"]}, None)
    assert set(result) == {"error"} and "unknown state" in result["error"]


def test_ops_unknown_action(handler_env):
    """An unknown or missing action returns {'error': ...} naming the valid actions."""
    for event in ({"action": "drop_everything"}, {}):
        result = ops.handler(event, None)
        assert set(result) == {"error"}
        assert "report" in result["error"] and "sla_report" in result["error"]


def test_ops_sla_report_action(handler_env):
    """The sla_report action returns the SLA report with its exact keys."""
    seed_customers(handler_env, CUSTOMERS)
    store_directly(handler_env, [order("a", 1, accepted_at=datetime.now(UTC) - timedelta(minutes=5))])
    sync_all(handler_env)
    result = ops.handler({"action": "sla_report", "sla_seconds": 60, "since_seconds": 3600}, None)
    assert set(result) == SLA_KEYS
    assert (result["synced"], result["pending"], result["breaches"]) == (1, 0, 1)
    assert result["lag_seconds"]["max"] >= 300


def test_ops_status_after_a_customer_load(handler_env):
    """Customers loaded as `txpipe seed` loads them (customers_stage, customers_commit); status reports OLTP
    counts, the last sync and the queue depth."""
    assert ops.handler({"action": "customers_stage", "load_id": "t", "rows": CUSTOMERS, "first": True},
                       None) == {"staged": 5}
    assert ops.handler({"action": "customers_commit", "load_id": "t"}, None) == {
        "loaded": 5, "new": 5, "updated": 0, "moved": 0}
    store_directly(handler_env, [order("a", 1), order("b", 2)])
    status = ops.handler({"action": "status"}, None)
    assert status["orders"] == 2 and status["customers"] == 5 and status["outbox_backlog"] == 2
    assert status["rejected_orders"] == 0 and status["last_sync"] is None
    assert status["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0}
    sync_all(handler_env)
    status = ops.handler({"action": "status"}, None)
    assert status["outbox_backlog"] == 0 and status["oldest_pending_at"] is None
    assert status["last_sync"]["synced"] == 2


def test_ops_migrate_is_idempotent(handler_env):
    """The migrate action on an up-to-date database applies nothing and reloads the 51 population rows."""
    assert ops.handler({"action": "migrate"}, None) == {"applied": {"oltp": [], "warehouse": []},
                                                         "state_population_rows": 51}


@pytest.mark.parametrize(("concurrently", "readers_wait"), [(True, False), (False, True)])
def test_a_concurrent_refresh_never_locks_readers_out(sales, concurrently, readers_wait):
    """While a refresh is under way (its transaction open), a report reads the views at once when the
    refresh is concurrent; a plain refresh would make it wait (here: past a 1 s lock timeout)."""
    refresher, reader = sales.connect("warehouse"), sales.connect("warehouse")
    try:
        with refresher.cursor() as cur:
            for statement in (schema.REFRESH_STATEMENTS_POSTGRES if concurrently else schema.REFRESH_STATEMENTS):
                cur.execute(statement)
        with reader.cursor() as cur:
            cur.execute("SET lock_timeout = '1s'")
        if readers_wait:
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                state_report(reader, "TX")
        else:
            assert state_report(reader, "TX")["total_pizzas"] == 16
    finally:
        refresher.rollback()
        refresher.close()
        reader.close()


def test_status_counts_a_large_table_from_its_statistics(sales, monkeypatch):
    """Past EXACT_COUNT_LIMIT rows, orders are counted from pg_class (kept by ANALYZE), marked estimated;
    below it, or never analyzed, exactly. The outbox is always counted exactly."""
    from lambdas.core import reporting

    conn = sales.connect("oltp")
    try:
        assert reporting.oltp_status(conn)["estimated"] == []
        monkeypatch.setattr(reporting, "EXACT_COUNT_LIMIT", 5)
        with conn.cursor() as cur:
            cur.execute("ANALYZE orders")
            cur.execute("INSERT INTO orders SELECT 'x-' || order_id, customer_id, pizza_type, qty, retail_price,"
                        " accepted_at, stored_at FROM orders")  # 8 more rows the statistics do not know of yet
        conn.commit()
        status = reporting.oltp_status(conn)
        assert (status["orders"], status["estimated"]) == (len(ORDERS), ["orders"])
        assert status["outbox_backlog"] == 0  # exact, however large the statistics think the outbox is
    finally:
        conn.close()

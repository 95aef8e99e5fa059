"""The quick benchmark's correctness checks on a tiny size: every contender moves every row, intact.

One run of the benchmark's own code on the tiny profile (a few thousand rows, a 3-second schedule, a
400-row sync batch so txpipe's pipelined path runs): row counts and checksums of what arrived, for
txpipe and for every baseline (the seed's ingest and sync, dlt, Sling, raw COPY). Never timings.
"""

from __future__ import annotations

from typing import Any

import pytest
from psycopg2 import sql

from benchmarks.__main__ import TINY, run_benchmarks
from benchmarks.data import SENT_COLUMNS, SYNC_COLUMNS, Check, Checksum, orders_checksum, table_checksum
from benchmarks.freshness import simulate_lags

pytestmark = pytest.mark.timeout(240)

EXPECTED_CHECKS = {
    "ingest/ing-tx", "ingest/ing-seed", "sync/txpipe", "sync/seed", "sync/copy", "sync/copy_binary", "sync/sling",
    "sync/sling_first_load", "sync/dlt", "freshness/txpipe",
}


@pytest.fixture(scope="module")
def tiny_run() -> tuple[dict[str, Any], list[Check]]:
    return run_benchmarks(TINY, log=lambda _: None)


def test_every_contender_is_checked_and_passes(tiny_run):
    """Each of txpipe's runs and each baseline's has a row-count + checksum check, and all of them pass."""
    report, checks = tiny_run
    assert {c.name for c in checks} == EXPECTED_CHECKS
    failed = [c.to_dict() for c in checks if not c.ok]
    assert failed == []
    assert report["checks_passed"] is True


def test_row_counts_are_the_sizes_asked_for(tiny_run):
    """Nothing is checked against an empty set: every check covers the rows the profile put in."""
    _, checks = tiny_run
    rows = {c.name: c.actual.rows for c in checks}
    assert rows["ingest/ing-tx"] == TINY.ingest_txpipe
    assert rows["ingest/ing-seed"] == TINY.ingest_seed
    assert rows["sync/seed"] == TINY.seed_sync_rows
    for name in ("sync/txpipe", "sync/copy", "sync/copy_binary", "sync/sling", "sync/sling_first_load", "sync/dlt"):
        assert rows[name] == TINY.sync_rows, name
    assert rows["freshness/txpipe"] > 0


def test_report_has_the_issue_json_shape(tiny_run):
    """The report carries every key the issue's JSON lists (values are not judged here)."""
    report, _ = tiny_run
    shape = {
        "ingest": ("txpipe_per_s", "seed_per_s", "ratio_vs_seed"),
        "sync": ("rows", "txpipe_per_s", "seed_per_s", "dlt_per_s", "sling_per_s", "copy_per_s", "ratio_vs_seed",
                 "ratio_vs_dlt", "ratio_vs_sling", "ratio_vs_copy"),
        "freshness": ("rate_per_s", "seconds", "lag_p50", "lag_p95", "lag_p99", "lag_max"),
        "memory": ("sync_rows", "peak_rss_mb"),
        "startup": ("txpipe_help_s", "python_floor_s"),
    }
    assert "machine" in report
    for section, keys in shape.items():
        assert set(keys) <= set(report[section]), section


def test_txpipe_sync_ran_pipelined_batches_and_drained_the_outbox(tiny_run):
    """With a 400-row batch the 2,500-row backlog took several batches (the pipelined path) and one run."""
    report, _ = tiny_run
    detail = report["sync"]["detail"]["txpipe"]
    assert detail["rows"] == TINY.sync_rows
    assert detail["batches"] >= TINY.sync_rows // 400
    assert report["memory"]["sync_rows"] == TINY.sync_rows
    assert report["freshness"]["breaches"] == 0


def test_checksum_catches_a_dropped_or_altered_row(clean):
    """The checksum is not fooled: one row missing, doubled or changed gives a different checksum."""
    orders = [{"order_id": f"c-{i}", "customer_id": i + 1, "type": "cheese", "qty": 2, "retail_price": 12.99}
              for i in range(5)]
    full = orders_checksum(orders)
    assert orders_checksum(orders[:-1]) != full
    assert orders_checksum([*orders, orders[0]]) != full
    assert orders_checksum([*orders[:-1], {**orders[-1], "qty": 3}]) != full
    assert orders_checksum([*orders[:-1], {**orders[-1], "retail_price": 12.98}]) != full

    conn = clean.connect("oltp")
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO customers (customer_id, state) SELECT g, 'TX' FROM generate_series(1, 5) g")
            for o in orders:
                cur.execute("INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at) "
                            "VALUES (%s, %s, %s, %s, %s, now())",
                            (o["order_id"], o["customer_id"], o["type"], o["qty"], o["retail_price"]))
        in_sql = table_checksum(conn, sql.Identifier("orders"), SENT_COLUMNS)
        assert in_sql == full  # the SQL and Python sides agree on the same rows
        with conn.cursor() as cur:
            cur.execute("UPDATE orders SET retail_price = 13.99 WHERE order_id = 'c-2'")
        assert table_checksum(conn, sql.Identifier("orders"), SENT_COLUMNS) != full
        assert isinstance(table_checksum(conn, sql.Identifier("orders"), SYNC_COLUMNS[:2]), Checksum)
    finally:
        conn.rollback()
        conn.close()


def test_freshness_model_matches_the_schedule():
    """The schedule model: a 1-minute sync that keeps up has lags within one interval; one that cannot diverges."""
    fast = simulate_lags(rate=100, interval=60, store_per_s=5000, sync_per_s=100_000, run_limit=100)
    assert not fast["diverges"] and 25 <= fast["lag_p50"] <= 35 and fast["lag_max"] <= 61
    seed = simulate_lags(rate=100, interval=900, store_per_s=1000, sync_per_s=1000)
    assert not seed["diverges"] and seed["lag_p99"] > 600
    assert simulate_lags(rate=200, interval=900, store_per_s=150, sync_per_s=1000)["diverges"]
    assert simulate_lags(rate=200, interval=900, store_per_s=1000, sync_per_s=100)["diverges"]


def test_dashboard_benchmark_checks_pass_and_report_the_issue_figures():
    """`--only dashboard` on a tiny history: every order loaded reaches the fact table, the dashboard's
    API equals `report --all --json`, and the JSON carries each figure the issue asks for."""
    report, checks = run_benchmarks(TINY, only=("dashboard",), log=lambda _: None)
    assert {c.name for c in checks} == {"dashboard/history reaches the warehouse", "dashboard/api equals report --all"}
    assert [c.to_dict() for c in checks if not c.ok] == []
    assert checks[0].actual.rows == TINY.dashboard_orders
    figures = report["dashboard"]
    for key in ("state_p99_ms", "state_p99_during_refresh_ms", "first_render_ms", "refresh_s", "sla_report_s",
                "status_s"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert figures["sync"]["rows"] == TINY.dashboard_orders and figures["sync"]["peak_rss_mb"] > 0
    assert figures["load_peak_rss_mb"] > 0
    assert figures["state_requests_during_refresh"] > 0  # reads really overlapped a refresh
    assert set(report["targets"]) >= {"dashboard.state_p99_ms", "dashboard.first_render_ms"}

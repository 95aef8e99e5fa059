"""freshness: accept -> warehouse lag under sustained load with a 1-minute sync schedule.

txpipe is redeployed with `--sync-every 1m` (the runtime restarts, and its schedule with it),
then `txpipe send FILE --rate R` posts orders through the API at R per second. The load stops
1 s before the scheduled sync that closes the window, so the run does not idle a whole
interval for its last second of orders (an order accepted just after that sync would wait as
long as one accepted just after the previous one: the distribution is the same). Once every
order is in the warehouse, `txpipe sla-report --json` gives p50/p95/p99/max.

The seed's 15-minute design is computed from its schedule: the same arrivals, its store at
the rate the ingest benchmark measured, and a sync every 15 minutes that drains its queue at
the rate the sync benchmark measured, within Lambda's 15-minute limit (`simulate_lags`). The
same model run with txpipe's measured rates and 1-minute schedule is reported beside the
measured lags, as a check of the model.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg2 import sql

from benchmarks.data import SENT_COLUMNS, Check, make_orders, orders_checksum, table_checksum, write_orders
from benchmarks.stack import Stack

SEED_SCHEDULE_S = 900.0
LAMBDA_MAX_S = 900.0


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (as PostgreSQL's percentile_cont)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def simulate_lags(*, rate: float, interval: float, store_per_s: float, sync_per_s: float,
                  run_limit: float = LAMBDA_MAX_S, periods: int = 8) -> dict[str, float]:
    """Accept -> warehouse lag for orders arriving at `rate`/s, stored FIFO at `store_per_s`, and moved by a
    sync that starts every `interval` s and drains whatever is stored, `sync_per_s` rows a second, for at
    most `run_limit` s. Percentiles over the orders of the last periods-1 intervals (after a warm-up one).
    If a stage cannot keep up its queue grows without end and every percentile is infinite."""
    if store_per_s < rate or sync_per_s * min(run_limit, interval) < rate * interval:
        return {"lag_p50": math.inf, "lag_p95": math.inf, "lag_p99": math.inf, "lag_max": math.inf,
                "diverges": True}
    count = int(rate * interval * periods)
    step = max(1, count // 200_000)  # every step-th order: bounded work, same distribution
    stored_at = -math.inf
    arrivals, stored = [], []
    for i in range(count):
        accepted = i / rate
        stored_at = max(accepted, stored_at + 1 / store_per_s)
        if i % step == 0:
            arrivals.append(accepted)
            stored.append(stored_at)
    lags = []
    position = 0  # next stored order (in the sampled list) the sync has not moved
    run = 1
    while position < len(stored):
        start = run * interval
        clock = start
        while position < len(stored) and stored[position] <= clock and clock - start < run_limit:
            clock += step / sync_per_s  # `step` real orders per sampled one
            lags.append(clock - arrivals[position])
            position += 1
        run += 1
        if run > periods * 4:
            break
    warm = [lag for lag, accepted in zip(lags, arrivals, strict=False) if accepted >= interval]
    values = sorted(warm)
    return {"lag_p50": round(_percentile(values, 0.5), 1), "lag_p95": round(_percentile(values, 0.95), 1),
            "lag_p99": round(_percentile(values, 0.99), 1), "lag_max": round(values[-1], 1), "diverges": False}


def _next_sync(stack: Stack) -> float:
    """Seconds until the runtime's next scheduled sync (from its /health, on the control socket)."""
    from txpipe_cli.local import control

    _, _, health = control.call(stack.state.invoke_socket, "GET", "/health", timeout=5, what="/health")
    due = datetime.fromisoformat(health["schedules"]["sync"]["next_run_at"])
    return (due - datetime.now(due.tzinfo)).total_seconds()


def run(stack: Stack, *, rate: float, seconds: float, sync_every: str, customers: int, workdir: Path,
        seed_rates: dict[str, float] | None = None,
        txpipe_rates: dict[str, float] | None = None) -> tuple[dict[str, Any], list[Check]]:
    stack.reset()
    stack.deploy(sync_every=sync_every, sla=900)  # new schedule: the runtime restarts, its clock with it
    try:
        return _measure(stack, rate=rate, seconds=seconds, sync_every=sync_every, customers=customers,
                        workdir=workdir, seed_rates=seed_rates, txpipe_rates=txpipe_rates)
    finally:
        stack.deploy(sync_every="12h", sla=86400)


def _measure(stack: Stack, *, rate: float, seconds: float, sync_every: str, customers: int, workdir: Path,
             seed_rates: dict[str, float] | None, txpipe_rates: dict[str, float] | None,
             ) -> tuple[dict[str, Any], list[Check]]:
    from txpipe_cli.config import parse_duration

    interval = parse_duration(sync_every)
    startup_allowance = 1.0  # the `txpipe send` process's own start
    until_sync = _next_sync(stack)
    if seconds < until_sync:
        end = seconds  # the load is over before the first scheduled sync
    else:  # stop 1 s before the last scheduled sync within `seconds`
        end = until_sync + math.floor((seconds - until_sync) / interval) * interval - 1.0
    duration = max(1.0, end - startup_allowance)
    count = int(rate * duration)
    orders = make_orders(count, customers, "fr", seed=31)
    path = write_orders(workdir / "freshness.json", orders)
    started = time.monotonic()
    sent = stack.txpipe_json("send", str(path), "--rate", str(rate), timeout=duration + 120)
    load_seconds = time.monotonic() - started
    if sent["accepted"] != count:
        raise RuntimeError(f"freshness: the API accepted {sent['accepted']} of {count} orders")
    # Every order reaches the warehouse by the scheduled sync after the load (plus that sync's run).
    stack.wait_for("warehouse", "SELECT count(*) FROM orders_fact WHERE order_id LIKE %s", ("fr-%",), count,
                   timeout=interval + 150, interval=0.5)
    report = stack.txpipe_json("sla-report", "--since", "1h", ok_codes=(0, 3))
    warehouse = stack.connect("warehouse")
    try:
        actual = table_checksum(warehouse, sql.Identifier("orders_fact"), SENT_COLUMNS, sql.SQL("order_id LIKE %s"),
                                ("fr-%",))
        with warehouse.cursor() as cur:
            cur.execute("SELECT count(*), max(synced) FROM sync_runs WHERE synced > 0")
            runs, largest = cur.fetchone()
    finally:
        warehouse.close()
    lag = report["lag_seconds"]
    result: dict[str, Any] = {
        "rate_per_s": rate, "seconds": round(load_seconds, 1), "orders": count, "sync_every_s": interval,
        "lag_p50": lag["p50"], "lag_p95": lag["p95"], "lag_p99": lag["p99"], "lag_max": lag["max"],
        "breaches": report["breaches"], "sync_runs": int(runs or 0), "largest_run": int(largest or 0),
    }
    if seed_rates:
        seed = simulate_lags(rate=rate, interval=SEED_SCHEDULE_S, store_per_s=seed_rates["store_per_s"],
                             sync_per_s=seed_rates["sync_per_s"])
        result["seed_15min"] = {"schedule_s": SEED_SCHEDULE_S, **seed, "from": "its schedule and measured rates"}
        if not seed["diverges"] and lag["p99"]:
            result["ratio_p99_vs_seed"] = round(seed["lag_p99"] / lag["p99"], 1)
    if txpipe_rates:
        result["txpipe_model"] = simulate_lags(rate=rate, interval=interval, store_per_s=txpipe_rates["store_per_s"],
                                               sync_per_s=txpipe_rates["sync_per_s"], run_limit=100)
    return result, [Check("freshness/txpipe", orders_checksum(orders), actual)]

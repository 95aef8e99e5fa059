"""sync: rows/s from the OLTP database to the warehouse for a backlog of N pending orders.

The backlog is laid down once (orders + outbox rows, as store leaves them) and every contender
moves it, or a sample of it, into the warehouse of the same PostgreSQL server:

- txpipe: its sync function through the runtime's Invoke API (what `txpipe sync-now` and the
  schedule call), until nothing is pending; the runtime's peak RSS over that sync is the memory
  benchmark;
- the seed: a queue of order ids drained 10 at a time, one SELECT and one autocommitted INSERT
  per order (benchmarks.seed), on a sample of the backlog (its rate does not depend on N);
- dlt, Sling and raw COPY: the `bench_orders_src` view into their own target.

Every contender's result is checked: row count and checksum of the target against the source.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from psycopg2 import sql

from benchmarks import baselines
from benchmarks.data import SYNC_COLUMNS, Check, Checksum, load_backlog, table_checksum
from benchmarks.seed import fill_ids_queue, seed_sync
from benchmarks.stack import SOURCE_VIEW, Stack

SYNC_EVENT = {"source": "txpipe.benchmark", "detail-type": "Manual Sync"}


def _rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _reset_peak(pid: int) -> bool:
    """Resets the process's peak RSS (Linux: writing 5 to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _target_checksum(stack: Stack, table: tuple[str, str]) -> Checksum:
    warehouse = stack.connect("warehouse")
    try:
        return table_checksum(warehouse, sql.Identifier(*table), SYNC_COLUMNS)
    finally:
        warehouse.close()


def _timed(rows: int, seconds: float) -> dict[str, Any]:
    return {"rows": rows, "seconds": round(seconds, 3), "per_s": round(rows / max(seconds, 1e-9), 1)}


def run_txpipe(stack: Stack, source: Checksum, max_invocations: int = 50) -> tuple[dict[str, Any], dict[str, Any],
                                                                                     Check]:
    pid = stack.runtime_pid()
    before = _rss_mb(pid)
    peak_reset = _reset_peak(pid)
    moved = invocations = batches = 0
    inside = 0.0
    started = time.perf_counter()
    while invocations < max_invocations:
        result = stack.invoke("sync", SYNC_EVENT)
        invocations += 1
        moved += int(result["synced"])
        batches += int(result["batches"])
        inside += float(result["seconds"])
        if int(result["pending"]) == 0:
            break
    seconds = time.perf_counter() - started
    after = _rss_mb(pid)
    timing = {**_timed(moved, seconds), "invocations": invocations, "batches": batches,
              "function_seconds": round(inside, 3)}
    memory = {"sync_rows": moved, "peak_rss_mb": round(after["VmHWM"], 1),
              "rss_before_mb": round(before["VmRSS"], 1),
              "peak_scope": "this sync" if peak_reset else "the runtime's life (clear_refs not allowed)"}
    return timing, memory, Check("sync/txpipe", source, _target_checksum(stack, ("public", "orders_fact")))


def lay_down_backlog(stack: Stack, rows: int, customers: int) -> Checksum:
    """A fresh deployment's OLTP with a backlog of `rows` stored orders awaiting the sync (tables analyzed);
    returns the backlog's checksum, the one every contender's warehouse must match."""
    stack.reset()
    stack.create_source_view()
    oltp = stack.connect("oltp", autocommit=False)
    try:
        load_backlog(oltp, rows, customers)
    finally:
        oltp.close()
    stack.vacuum_analyze("oltp", ("orders", "outbox", "customers"))
    oltp = stack.connect("oltp")
    try:
        source = table_checksum(oltp, sql.Identifier(SOURCE_VIEW), SYNC_COLUMNS)
    finally:
        oltp.close()
    if source.rows != rows:
        raise RuntimeError(f"the backlog has {source.rows} orders, not {rows}")
    return source


def run(stack: Stack, *, rows: int, seed_rows: int, customers: int, workdir: Path,
        contenders: tuple[str, ...] = ("txpipe", "seed", "dlt", "sling", "copy")) -> tuple[dict[str, Any],
                                                                                         list[Check]]:
    source = lay_down_backlog(stack, rows, customers)
    checks: list[Check] = []
    out: dict[str, Any] = {"rows": rows}
    memory: dict[str, Any] = {}
    if "txpipe" in contenders:
        out["txpipe"], memory, check = run_txpipe(stack, source)
        checks.append(check)

    if "seed" in contenders:
        sample = [f"bk-{i:08d}" for i in range(min(seed_rows, rows))]
        stack.create_target("bench_seed")
        fill_ids_queue(stack.state, sample)
        started = time.perf_counter()
        moved = seed_sync(stack.state, ("bench_seed", "orders_fact"), max_seconds=1800)
        out["seed"] = _timed(moved, time.perf_counter() - started)
        oltp = stack.connect("oltp")
        try:
            expected = table_checksum(oltp, sql.Identifier(SOURCE_VIEW), SYNC_COLUMNS,
                                      sql.SQL("order_id = ANY(%s)"), (sample,))
        finally:
            oltp.close()
        checks.append(Check("sync/seed", expected, _target_checksum(stack, ("bench_seed", "orders_fact"))))

    if "copy" in contenders:
        for key, schema, binary in (("copy", "bench_copy", False), ("copy_binary", "bench_copy_binary", True)):
            stack.create_target(schema)
            out[key] = _timed(rows, baselines.raw_copy(stack, (schema, "orders_fact"), binary=binary))
            checks.append(Check(f"sync/{key}", source, _target_checksum(stack, (schema, "orders_fact"))))

    if "sling" in contenders:
        # The like-for-like run: an upsert keyed on order_id into an existing target of orders_fact's shape.
        stack.create_target("bench_sling")
        out["sling"] = _timed(rows, baselines.sling(stack, ("bench_sling", "orders_fact"), workdir))
        checks.append(Check("sync/sling", source, _target_checksum(stack, ("bench_sling", "orders_fact"))))
        # For reference: Sling's first load, into a table it creates itself (no key to merge on).
        out["sling_first_load"] = _timed(rows, baselines.sling(stack, ("bench_sling_first", "orders_fact"),
                                                               workdir))
        checks.append(Check("sync/sling_first_load", source,
                            _target_checksum(stack, ("bench_sling_first", "orders_fact"))))

    if "dlt" in contenders:
        report = baselines.dlt(stack, "bench_dlt", workdir)
        out["dlt"] = {**_timed(rows, report["seconds"]), "import_seconds": report["import_seconds"]}
        checks.append(Check("sync/dlt", source, _target_checksum(stack, ("bench_dlt", SOURCE_VIEW))))

    stack.drop_baseline_targets()
    return {"sync": _summary(out), "memory": memory}, checks


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"rows": out["rows"]}
    for key in ("txpipe", "seed", "dlt", "sling", "copy"):
        if key in out:
            summary[f"{key}_per_s"] = out[key]["per_s"]
    txpipe = summary.get("txpipe_per_s")
    for key in ("seed", "dlt", "sling", "copy"):
        if txpipe and summary.get(f"{key}_per_s"):
            summary[f"ratio_vs_{key}"] = round(txpipe / summary[f"{key}_per_s"], 2)
    for key in ("sling_first_load", "copy_binary"):
        if key in out:
            summary[f"{key}_per_s"] = out[key]["per_s"]
    summary["detail"] = {k: v for k, v in out.items() if k != "rows"}
    return summary

"""`python -m benchmarks [--quick] [--json PATH]`: txpipe beside its baselines, same stack, same data, one run.

Deploys the local target under a temporary TXPIPE_HOME in /var/tmp, runs startup, ingest, sync
(with memory), freshness and redshift (the Redshift warehouse's COPY from S3 against its INSERT
load, through the shim and moto), prints a table of rates and ratios, writes the JSON report,
destroys the deployment. Exits 1 if any correctness check (row counts and checksums, txpipe and
every baseline alike) failed; targets are goals, reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import dashboard, freshness, ingest, redshift, startup, sync
from benchmarks.data import Check
from benchmarks.stack import Stack

ALL = ("startup", "ingest", "sync", "freshness", "redshift", "dashboard")
# What run_benchmarks runs unless told: the local pipeline against its baselines. The Redshift loads are
# measured on emulation (shim and moto) and added by `python -m benchmarks`, which runs ALL.
PIPELINE = ("startup", "ingest", "sync", "freshness")


@dataclass(frozen=True)
class Profile:
    name: str
    customers: int
    ingest_txpipe: int  # orders txpipe's API takes
    ingest_seed: int  # orders the seed's API takes (its rate does not depend on N)
    sync_rows: int  # the backlog every sync contender moves
    seed_sync_rows: int  # the sample of it the seed's sync moves
    fresh_rate: float  # orders/s of sustained load
    fresh_seconds: float
    redshift_rows: int = 2_500  # the backlog each Redshift load moves (INSERT is the slow one)
    dashboard_orders: int = 5_000  # the history the dashboard's reads run over (a year of it)
    sync_every: str = "1m"
    startup_runs: int = 10


QUICK = Profile("quick", customers=50_000, ingest_txpipe=20_000, ingest_seed=2_000, sync_rows=100_000,
                seed_sync_rows=3_000, fresh_rate=100, fresh_seconds=60, redshift_rows=100_000,
                dashboard_orders=1_000_000)
FULL = Profile("full", customers=200_000, ingest_txpipe=100_000, ingest_seed=10_000, sync_rows=1_000_000,
               seed_sync_rows=20_000, fresh_rate=200, fresh_seconds=300, redshift_rows=500_000,
               dashboard_orders=10_000_000)
# Correctness only (the tests): every contender on a few thousand rows, a schedule of seconds. The sync
# batch is shrunk through the function's own TXPIPE_SYNC_BATCH_ROWS so that the pipelined path runs too.
TINY = Profile("tiny", customers=500, ingest_txpipe=300, ingest_seed=60, sync_rows=2_500, seed_sync_rows=100,
               fresh_rate=40, fresh_seconds=3, sync_every="3s", startup_runs=1)

TARGETS = {
    "ingest.ratio_vs_seed": (">=", 20), "sync.ratio_vs_seed": (">=", 50), "sync.ratio_vs_dlt": (">=", 5),
    "sync.ratio_vs_sling": (">=", 1), "sync.ratio_vs_copy": (">=", 0.33), "freshness.lag_p99": ("<=", 75),
    "memory.peak_rss_mb": ("<=", 256), "startup.txpipe_help_s": ("<=", 0.3),
    "redshift.ratio_copy_vs_insert": (">=", 2),
    "dashboard.state_p99_ms": ("<=", 50), "dashboard.state_p99_during_refresh_ms": ("<=", 50),
    "dashboard.first_render_ms": ("<=", 1000), "dashboard.sla_report_s": ("<=", 1), "dashboard.status_s": ("<=", 1),
}


def machine(stack: Stack | None) -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    if stack is not None:
        conn = stack.connect("oltp")
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                info["postgresql"] = cur.fetchone()[0]
        finally:
            conn.close()
    from importlib.metadata import PackageNotFoundError, version

    for package in ("psycopg2-binary", "dlt", "sqlalchemy", "sling", "sling-linux-amd64"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    try:
        info["txpipe_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,  # noqa: S607
                                               text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["txpipe_commit"] = None
    return info


def run_benchmarks(profile: Profile, only: tuple[str, ...] = PIPELINE, sync_contenders: tuple[str, ...] | None = None,
                   log: Any = print) -> tuple[dict[str, Any], list[Check]]:
    """Runs the chosen benchmarks on one fresh deployment; returns the report and every correctness check."""
    report: dict[str, Any] = {"profile": profile.name, "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    checks: list[Check] = []
    t0 = time.monotonic()
    extra_env = {"TXPIPE_SYNC_BATCH_ROWS": "400"} if profile.name == "tiny" else {}
    saved = {k: os.environ.get(k) for k in extra_env}
    os.environ.update(extra_env)  # the runtime inherits it from `txpipe deploy`
    try:
        with Stack.deployed(customers=profile.customers) as stack, \
                tempfile.TemporaryDirectory(prefix="txpipe-bench-work-", dir="/var/tmp") as work:
            workdir = Path(work)
            report["machine"] = machine(stack)
            if "startup" in only:
                log("startup: txpipe --help, --version, endpoint, status vs python -c pass ...")
                report["startup"] = startup.run(profile.startup_runs, env=stack.env)
            if "ingest" in only:
                log(f"ingest: {profile.ingest_txpipe} orders through txpipe, {profile.ingest_seed} through the "
                    "seed ...")
                report["ingest"], found = ingest.run(stack, txpipe_orders=profile.ingest_txpipe,
                                                     seed_orders=profile.ingest_seed, customers=profile.customers,
                                                     workdir=workdir)
                checks += found
            if "sync" in only:
                log(f"sync: a backlog of {profile.sync_rows} orders (txpipe, seed sample {profile.seed_sync_rows}, "
                    "raw COPY, Sling, dlt) ...")
                contenders = sync_contenders or ("txpipe", "seed", "copy", "sling", "dlt")
                out, found = sync.run(stack, rows=profile.sync_rows, seed_rows=profile.seed_sync_rows,
                                      customers=profile.customers, workdir=workdir, contenders=contenders)
                report.update(out)
                checks += found
            if "freshness" in only:
                log(f"freshness: {profile.fresh_rate:g} orders/s for {profile.fresh_seconds:g} s, sync every "
                    f"{profile.sync_every} ...")
                seed_rates = txpipe_rates = None
                if "ingest" in report and report.get("sync", {}).get("seed_per_s"):
                    seed_rates = {"store_per_s": report["ingest"]["seed_per_s"],
                                  "sync_per_s": report["sync"]["seed_per_s"]}
                if "ingest" in report and report.get("sync", {}).get("txpipe_per_s"):
                    txpipe_rates = {"store_per_s": report["ingest"]["txpipe_per_s"],
                                    "sync_per_s": report["sync"]["txpipe_per_s"]}
                report["freshness"], found = freshness.run(
                    stack, rate=profile.fresh_rate, seconds=profile.fresh_seconds, sync_every=profile.sync_every,
                    customers=profile.customers, workdir=workdir, seed_rates=seed_rates, txpipe_rates=txpipe_rates)
                checks += found
            if "redshift" in only:
                log(f"redshift: a backlog of {profile.redshift_rows} orders through the shim, by COPY from moto S3 "
                    "and by multi-row INSERT ...")
                report["redshift"], found = redshift.run(stack, rows=profile.redshift_rows,
                                                         customers=profile.customers, workdir=workdir)
                checks += found
            if "dashboard" in only:
                log(f"dashboard: {profile.dashboard_orders:,} orders of history (seed --history, sync, refresh), "
                    "then state changes, idle and during a refresh, first render, sla-report, status ...")
                report["dashboard"], found = dashboard.run(stack, orders=profile.dashboard_orders)
                checks += found
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    report["checks"] = [c.to_dict() for c in checks]
    report["checks_passed"] = all(c.ok for c in checks)
    report["targets"] = evaluate_targets(report)
    report["seconds"] = round(time.monotonic() - t0, 1)
    return report, checks


def _get(report: dict[str, Any], dotted: str) -> Any:
    node: Any = report
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def evaluate_targets(report: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, (op, goal) in TARGETS.items():
        value = _get(report, key)
        if value is None:
            continue
        met = value >= goal if op == ">=" else value <= goal
        out[key] = {"value": value, "goal": f"{op} {goal:g}", "met": bool(met)}
    return out


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "unbounded"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:g}{unit}" if isinstance(value, float | int) else str(value)


def table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    targets = report.get("targets", {})

    def goal(key: str) -> str:
        t = targets.get(key)
        return f"{t['goal']} {'met' if t['met'] else 'MISSED'}" if t else ""

    if "startup" in report:
        s = report["startup"]
        for name, words in (("help", "--help"), ("version", "--version"), ("endpoint", "endpoint"),
                            ("status", "status")):
            if f"txpipe_{name}_s" in s:
                rows.append((f"startup: txpipe {words} (s)", _fmt(s[f"txpipe_{name}_s"]),
                             f"python -c pass {_fmt(s['python_floor_s'])}", "",
                             goal(f"startup.txpipe_{name}_s")))
    if "ingest" in report:
        i = report["ingest"]
        rows.append(("ingest: orders/s API -> OLTP", _fmt(i["txpipe_per_s"]), f"seed {_fmt(i['seed_per_s'])}",
                     f"{i['ratio_vs_seed']}x", goal("ingest.ratio_vs_seed")))
    if "sync" in report:
        s = report["sync"]
        for key, label in (("seed", "seed"), ("dlt", "dlt"), ("sling", "Sling (upsert)"), ("copy", "raw COPY")):
            if f"{key}_per_s" in s:
                rows.append((f"sync: rows/s, {s['rows']:,} pending", _fmt(s.get("txpipe_per_s")),
                             f"{label} {_fmt(s[f'{key}_per_s'])}", f"{s.get(f'ratio_vs_{key}', '-')}x",
                             goal(f"sync.ratio_vs_{key}")))
        for key, label in (("sling_first_load", "Sling first load"), ("copy_binary", "raw COPY binary")):
            if f"{key}_per_s" in s and s.get("txpipe_per_s"):
                rows.append(("sync: for reference", _fmt(s["txpipe_per_s"]), f"{label} {_fmt(s[f'{key}_per_s'])}",
                             f"{round(s['txpipe_per_s'] / s[f'{key}_per_s'], 2)}x", ""))
    if report.get("memory"):
        m = report["memory"]
        rows.append((f"memory: sync of {m['sync_rows']:,} rows", f"{_fmt(m['peak_rss_mb'])} MB peak RSS",
                     f"before {_fmt(m['rss_before_mb'])} MB", "", goal("memory.peak_rss_mb")))
    if "freshness" in report:
        f = report["freshness"]
        seed = f.get("seed_15min", {})
        rows.append((f"freshness: {f['rate_per_s']:g}/s for {f['seconds']:g} s, sync every {f['sync_every_s']:g} s",
                     f"p50 {_fmt(f['lag_p50'])} p95 {_fmt(f['lag_p95'])} p99 {_fmt(f['lag_p99'])} max "
                     f"{_fmt(f['lag_max'])} s",
                     f"seed 15-min p99 {_fmt(seed.get('lag_p99'))} s" if seed else "",
                     f"{f['ratio_p99_vs_seed']}x fresher" if f.get("ratio_p99_vs_seed") else "",
                     goal("freshness.lag_p99")))
    if "redshift" in report:
        r = report["redshift"]
        rows.append((f"redshift: rows/s, {r['rows']:,} pending, COPY from S3", _fmt(r["copy_per_s"]),
                     f"multi-row INSERT {_fmt(r['insert_per_s'])}", f"{r['ratio_copy_vs_insert']}x",
                     goal("redshift.ratio_copy_vs_insert")))
    if "dashboard" in report:
        d = report["dashboard"]
        rows += [
            (f"dashboard: {d['orders']:,} orders, seed --history", f"{_fmt(d['load_per_s'])} orders/s",
             f"{_fmt(d['load_s'])} s, peak RSS {_fmt(d['load_peak_rss_mb'])} MB", "", ""),
            ("dashboard: sync of the history", f"{_fmt(d['sync']['per_s'])} rows/s",
             f"{_fmt(d['sync']['seconds'])} s, peak RSS {_fmt(d['sync']['peak_rss_mb'])} MB", "", ""),
            ("dashboard: refresh-views (s)", _fmt(d["refresh_s"]), "", "", ""),
            ("dashboard: state change p99 (ms)", _fmt(d["state_p99_ms"]), f"p50 {_fmt(d['state_p50_ms'])}",
             f"{round(5000 / d['state_p99_ms'])}x under 5 s" if d["state_p99_ms"] else "",
             goal("dashboard.state_p99_ms")),
            ("dashboard: state change p99 during refresh (ms)", _fmt(d["state_p99_during_refresh_ms"]),
             f"{d['state_requests_during_refresh']} requests in {_fmt(d['refresh_during_s'])} s", "",
             goal("dashboard.state_p99_during_refresh_ms")),
            ("dashboard: first render in Chromium (ms)", _fmt(d["first_render_ms"]), "cold", "",
             goal("dashboard.first_render_ms")),
            ("dashboard: txpipe sla-report (s)", _fmt(d["sla_report_s"]), "24 h window", "",
             goal("dashboard.sla_report_s")),
            ("dashboard: txpipe status (s)", _fmt(d["status_s"]), "", "", goal("dashboard.status_s")),
        ]
    widths = [max(len(r[i]) for r in rows + [("benchmark", "txpipe", "baseline", "ratio", "target")])
              for i in range(5)]
    lines = []
    for r in [("benchmark", "txpipe", "baseline", "ratio", "target"), *rows]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
        if len(lines) == 1:
            lines.append("  ".join("-" * w for w in widths))
    passed = sum(1 for c in report.get("checks", []) if c["ok"])
    failed = [c["name"] for c in report.get("checks", []) if not c["ok"]]
    lines.append("")
    lines.append(f"correctness: {passed} of {len(report.get('checks', []))} checks passed (row counts and "
                 f"checksums){'; FAILED: ' + ', '.join(failed) if failed else ''}")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick profile (~3.5 min on 2 cores; full ~15)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON here")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    args = parser.parse_args(argv)
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    profile = QUICK if args.quick else FULL
    print(f"txpipe benchmarks, {profile.name} profile: {json.dumps(asdict(profile))}", file=sys.stderr)
    report, checks = run_benchmarks(profile, only, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(report))
    print(f"\n{report['seconds']:g} s; machine: {report.get('machine', {}).get('cpu', '?')}, "
          f"{report.get('machine', {}).get('cpus')} cores")
    if args.json:
        args.json.write_text(json.dumps(_json_safe(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""dashboard: every read the analysts and the operator make, at a year of history (1 M orders quick, 10 M full).

On the benchmark's deployment (its customers seeded): `txpipe seed --history N --days 365` lays the
history down through the real path (COPY into OLTP and the outbox), `sync-now` moves it to the warehouse
(rows/s, and the runtime's peak RSS over that sync), `refresh-views` builds the views (seconds). Then,
with `txpipe dashboard` serving (its read cache off: every request reaches the warehouse):

- state change: GET /api/states/{code} for random states, latency p50/p99; then the same while a
  `refresh-views` runs (the views must never lock a reader out);
- first render: headless Chromium opens the page, cold; the page marks `txpipe-first-render` when the
  state's figures are drawn, and that mark's time since navigation start is the figure;
- `txpipe sla-report` (its default 24 h window) and `txpipe status`, wall time of the command.

Checks: every order loaded reaches the fact table; the dashboard's states equal `report --all --json`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import threading
import time
from typing import Any

from benchmarks.data import Check, Checksum, row_hash
from benchmarks.stack import Stack, txpipe_executable
from benchmarks.sync import SYNC_EVENT, _reset_peak, _rss_mb
from lambdas.core.reporting import STATE_CODES


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _wall(stack: Stack, *args: str, ok_codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    proc = stack.txpipe(*args, check=False, timeout=600)
    seconds = time.perf_counter() - started
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"txpipe {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return seconds


class DashboardProcess:
    """`txpipe dashboard --port 0 --json` with its read cache off, and keep-alive requests to it."""

    def __init__(self, stack: Stack) -> None:
        env = {**stack.env, "TXPIPE_DASHBOARD_CACHE_SECONDS": "0"}
        self.proc = subprocess.Popen([*txpipe_executable(), "dashboard", "--port", "0", "--json"], env=env,  # noqa: S603
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"txpipe dashboard did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = json.loads(line)["url"]  # carries the run's token (?token=...)
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        [token] = parse_qs(parts.query)["token"]
        self.headers = {"Cookie": f"txpipe_dashboard_{parts.port}={token}"}  # what the URL's first load sets

    def timed_gets(self, paths: list[str], until: threading.Event | None = None) -> list[float]:
        """Milliseconds per GET, one keep-alive connection; stops early once `until` is set."""
        import http.client
        from urllib.parse import urlsplit

        port = urlsplit(self.url).port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies = []
        try:
            for path in paths:
                if until is not None and until.is_set():
                    break
                started = time.perf_counter()
                conn.request("GET", path, headers=self.headers)
                response = conn.getresponse()
                body = response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        finally:
            conn.close()
        return latencies

    def get_json(self, path: str) -> Any:
        import urllib.request

        request = urllib.request.Request(self.base + path, headers=self.headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def headless_chromium() -> Any:
    """Debian's chromium, headless in a fresh profile, driven through its chromedriver (selenium); the
    browser's console is kept (get_log("browser")). Raises when either is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise RuntimeError("Debian's chromium and chromium-driver are needed (bash scripts/install.sh --dev)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)  # --no-sandbox: root has no user namespace sandbox here
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(30)
    return browser


def first_render_ms(url: str) -> float:
    """Cold first render in headless Chromium (a fresh profile): the page's `txpipe-first-render` mark."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chromium()
    try:
        browser.get(url + "&state=TX")  # the printed URL carries the token: the page redirects to /?state=TX
        WebDriverWait(browser, 30).until(
            lambda b: b.execute_script("return performance.getEntriesByName('txpipe-first-render').length"))
        return float(browser.execute_script("return performance.getEntriesByName('txpipe-first-render')[0].startTime"))
    finally:
        browser.quit()


def _sync_all(stack: Stack, max_invocations: int = 1000) -> dict[str, Any]:
    pid = stack.runtime_pid()
    before = _rss_mb(pid)
    peak_reset = _reset_peak(pid)
    moved = invocations = 0
    started = time.perf_counter()
    while invocations < max_invocations:
        result = stack.invoke("sync", SYNC_EVENT)
        invocations += 1
        moved += int(result["synced"])
        if int(result["pending"]) == 0:
            break
    seconds = time.perf_counter() - started
    return {"rows": moved, "seconds": round(seconds, 1), "per_s": round(moved / max(seconds, 1e-9)),
            "invocations": invocations, "peak_rss_mb": round(_rss_mb(pid)["VmHWM"], 1),
            "rss_before_mb": round(before["VmRSS"], 1),
            "peak_scope": "this sync" if peak_reset else "the runtime's life"}


def run(stack: Stack, *, orders: int, requests: int = 500, days: int = 365) -> tuple[dict[str, Any], list[Check]]:
    stack.reset()
    runtime = stack.runtime_pid()
    _reset_peak(runtime)
    started = time.perf_counter()
    loaded = stack.txpipe_json("seed", "--history", str(orders), "--days", str(days), timeout=7200)
    load_s = time.perf_counter() - started
    load_peak_mb = _rss_mb(runtime)["VmHWM"]  # the runtime's ops function generates and COPYs the chunks
    sync = _sync_all(stack)
    refresh_s = _wall(stack, "refresh-views")
    fact = stack.connect("warehouse")
    try:
        with fact.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders_fact")
            in_fact = cur.fetchone()[0]
    finally:
        fact.close()
    checks = [Check("dashboard/history reaches the warehouse", Checksum(orders, 0), Checksum(in_fact, 0))]

    rng = random.Random(7)
    codes = sorted(STATE_CODES)
    server = DashboardProcess(stack)
    try:
        report_all = stack.txpipe_json("report", "--all")
        served = server.get_json("/api/states")
        checks.append(Check("dashboard/api equals report --all",
                            Checksum(51, row_hash([json.dumps(report_all["states"])])),
                            Checksum(len(served["states"]), row_hash([json.dumps(served["states"])]))))
        idle = server.timed_gets([f"/api/states/{rng.choice(codes)}" for _ in range(requests)])

        # The same reads while a refresh runs: requests until it ends (at most `requests` of them).
        refreshing = threading.Event()
        done = threading.Event()

        def refresh() -> None:
            refreshing.set()
            try:
                stack.txpipe("refresh-views", timeout=1800)
            finally:
                done.set()

        thread = threading.Thread(target=refresh, daemon=True)
        refresh_started = time.perf_counter()
        thread.start()
        refreshing.wait()
        during: list[float] = []
        while not done.is_set() and len(during) < requests * 10:
            during += server.timed_gets([f"/api/states/{rng.choice(codes)}" for _ in range(20)], until=done)
        thread.join()
        refresh_during_s = time.perf_counter() - refresh_started
        render = first_render_ms(server.url)
    finally:
        server.stop()
    sla_s = _wall(stack, "sla-report", ok_codes=(0, 3))  # history synced today breaches, by design
    status_s = _wall(stack, "status", ok_codes=(0, 1))
    out = {
        "orders": orders, "days": days, "load_s": round(load_s, 1), "load_per_s": round(orders / load_s),
        "inserted": loaded.get("inserted"),
        "load_peak_rss_mb": round(load_peak_mb, 1), "sync": sync, "refresh_s": round(refresh_s, 2),
        "state_requests": len(idle), "state_p50_ms": round(statistics.median(idle), 2),
        "state_p99_ms": round(_percentile(idle, 0.99), 2),
        "state_requests_during_refresh": len(during), "refresh_during_s": round(refresh_during_s, 2),
        "state_p99_during_refresh_ms": round(_percentile(during, 0.99), 2) if during else None,
        "state_max_during_refresh_ms": round(max(during), 2) if during else None,
        "first_render_ms": round(render, 1),
        "sla_report_s": round(sla_s, 3), "status_s": round(status_s, 3),
        "cpus": os.cpu_count(),
    }
    return out, checks

"""`python -m benchmarks.faults [--short] [--only a,b] [--json PATH]`: the fault harness.

Deploys the local target under a temporary TXPIPE_HOME, then tries, one trial at a time, what an
adversary (or an ordinary bad day) does to it: kill -9 of the runtime and of the postmaster under
load, kill -9 mid `sync-now` of a large backlog, a database outage (OLTP, then warehouse) under
load, a hung runtime, `send` killed and re-run, floods of clients, hostile bodies and slow ones; and
(benchmarks/fault_trials.py) a re-send after an append, the views refreshed under a live sync, a second
Unix user, an upgrade from the previous release under load, a full disk.
After each trial the operator's own recovery runs (`txpipe deploy`, the same `txpipe send` again,
`txpipe sync-now`) and the harness counts, by order id, what the API accepted and what OLTP and
the warehouse hold. One table: trial | accepted | OLTP | warehouse | doubled | lost | dead letters
| note. Everything talks to 127.0.0.1 only and every trial is bounded in time and requests.
Exits 1 if any trial loses, doubles or dead-letters an order, or misses its figure.
The harness the trials drive (profiles, a trial's row, sending and counting) is benchmarks/fault_harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchmarks import fault_trials, flood
from benchmarks.fault_harness import CUSTOMERS, FULL, SHORT, Harness, Profile, Row
from benchmarks.stack import Stack, txpipe_executable

RSS_LIMIT_MB = 300


class Trials(Harness):
    """The harness's own trials (the others are benchmarks/fault_trials.py's functions of a Harness)."""

    # ------------------------------------------------------------------ trials

    def kill_runtime_under_send(self) -> Row:
        return self.kill_under_send("kill-runtime", self.runtime_pid, "send exit {code} after {accepted} accepted; "
                                    "deploy, same send again", send_must_fail=True)

    def kill_postmaster_under_send(self) -> Row:
        return self.kill_under_send("kill-postmaster", self.postmaster_pid, "postmaster {pid} killed after {accepted} "
                                    "accepted; deploy restarts it; same send again", send_must_fail=False)

    def kill_under_send(self, name: str, victim: Callable[[], int | None], note: str, send_must_fail: bool) -> Row:
        """SIGKILLs `victim()` once a quarter of a paced send is stored; then `deploy` (which restarts what died)
        and the same send again: every order must be stored once."""
        path, prefix = self.order_file(name, self.profile.send_orders)
        proc = self.send(path, rate=self.profile.send_rate, wait=False)
        self.wait_until(lambda: self.counts(prefix)[1] > self.profile.send_orders // 4, 60)
        pid = victim()
        if pid:
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
        first = json.loads(out) if out.strip() else {"accepted": 0}
        self.stack.txpipe_json("deploy", "--sync-every", "12h", "--sla", "86400")
        again = self.send(path)
        ok = again["accepted"] == self.profile.send_orders and (proc.returncode != 0 or not send_must_fail)
        return self.settle(prefix, self.profile.send_orders, again["accepted"],
                           note.format(code=proc.returncode, accepted=first["accepted"], pid=pid), ok=ok)

    def kill_runtime_mid_sync(self) -> Row:
        n = self.profile.backlog
        self.stack.execute("oltp", "SET synchronous_commit TO off")
        conn = self.stack.connect("oltp")
        try:
            with conn.cursor() as cur:
                cur.execute("""INSERT INTO orders (order_id, customer_id, pizza_type, qty, retail_price, accepted_at)
                               SELECT 'backlog-' || g, 1 + g %% %s, 'supreme', 1, 15.25, now() - interval '1 minute'
                               FROM generate_series(1, %s) g""", (CUSTOMERS, n))
                cur.execute("INSERT INTO outbox (order_id, accepted_at) SELECT order_id, accepted_at FROM orders "
                            "WHERE order_id LIKE 'backlog-%%'")
        finally:
            conn.close()
        proc = subprocess.Popen([*txpipe_executable(), "sync-now", "--json"], env=self.stack.env,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.wait_until(lambda: self.counts("backlog-")[3] > 0, 60)
        loaded = self.counts("backlog-")[3]
        os.kill(self.runtime_pid(), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        self.stack.txpipe_json("deploy", "--sync-every", "12h", "--sla", "86400")
        again = self.stack.txpipe_json("sync-now")
        row = self.settle("backlog-", n, n, "")
        row.note = (f"killed with {loaded} of {n} loaded; sync-now said: {err.strip()[:60]!r}; re-run: "
                    f"{again['inserted']} new, {again['already_present']} already there")
        row.ok = row.ok and proc.returncode != 0 and again["synced"] == n
        return row

    def database_outage(self, database: str) -> Row:
        p = self.profile
        count = int(p.outage_rate * (p.outage_seconds + 6))
        path, prefix = self.order_file(f"outage-{database}", count)
        if database == "txpipe_warehouse":
            self.stack.txpipe_json("deploy", "--sync-every", "2s", "--sla", "900")
        proc = self.send(path, rate=p.outage_rate, wait=False)
        time.sleep(2)
        self.set_connections(database, False)
        time.sleep(min(p.outage_seconds, 4))
        status = self.stack.txpipe("status", "--json", check=False)
        problems = json.loads(status.stdout or "{}").get("problems", [])
        time.sleep(max(0.0, p.outage_seconds - 4))
        self.set_connections(database, True)
        out, _ = proc.communicate(timeout=600)
        sent = json.loads(out) if out.strip() else {"accepted": 0}
        self.wait_stored(prefix, sent["accepted"], 300)
        if database == "txpipe_warehouse":
            self.wait_until(lambda: self.counts(prefix)[3] >= sent["accepted"], 60)
            self.stack.txpipe_json("deploy", "--sync-every", "12h", "--sla", "86400")
        row = self.settle(prefix, count, sent["accepted"], "")
        said = "; ".join(problems)[:90]
        row.note = f"{p.outage_seconds:g} s outage, status exit {status.returncode}: {said}"
        row.ok = row.ok and status.returncode != 0 and sent["accepted"] == count
        return row

    def hung_runtime(self) -> Row:
        path, prefix = self.order_file("hung", self.profile.send_orders // 3)
        self.send(path)
        pid = self.runtime_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            status = self.stack.txpipe("status", "--json", check=False)
            hung = "runtime hung" in json.loads(status.stdout or "{}").get("problems", [])
            deployed = self.stack.txpipe_json("deploy", "--sync-every", "12h", "--sla", "86400")
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        from txpipe_cli.local.processes import runtime_pids

        alive = runtime_pids(self.stack.home)
        again = self.send(path)
        row = self.settle(prefix, self.profile.send_orders // 3, again["accepted"], "")
        row.note = (f"status exit {status.returncode} (hung: {hung}); deploy: {deployed['actions']['runtime']}; "
                    f"runtimes after: {len(alive)}")
        row.ok = row.ok and hung and status.returncode != 0 and alive == [self.runtime_pid()] and pid not in alive
        return row

    def send_killed_and_rerun(self) -> Row:
        path, prefix = self.order_file("send-killed", self.profile.send_orders)
        proc = self.send(path, rate=self.profile.send_rate, wait=False)
        self.wait_until(lambda: self.counts(prefix)[1] > self.profile.send_orders // 3, 60)
        proc.kill()
        proc.communicate(timeout=30)
        stored_then = self.counts(prefix)[1]
        again = self.send(path)
        note = f"send SIGKILLed with {stored_then} stored; the same send again"
        return self.settle(prefix, self.profile.send_orders, again["accepted"], note,
                           ok=again["accepted"] == self.profile.send_orders)

    def flood_of_clients(self) -> Row:
        p, state = self.profile, self.stack.state
        clients = [[flood.valid_order(f"flood-{c}-{r}", 1 + (c * 31 + r) % CUSTOMERS) for r in range(p.flood_requests)]
                   for c in range(p.flood_clients)]
        sync = subprocess.Popen([*txpipe_executable(), "sync-now", "--json"], env=self.stack.env,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        result = flood.flood(state.api_port, state.api_key(), clients, timeout=60)
        _, sync_err = sync.communicate(timeout=120)
        expected = p.flood_clients * p.flood_requests
        accepted = result.statuses.get(202, 0)
        row = self.settle("flood-", expected, accepted, "")
        errors = result.total - accepted
        row.note = (f"{p.flood_clients} keep-alive clients x {p.flood_requests}: {errors} errors "
                    f"{flood.summarize(result)['failures'] or ''}; sync-now during it: exit {sync.returncode}")
        row.ok = row.ok and errors == 0 and accepted == expected and sync.returncode == 0
        return row

    def hostile_bodies(self) -> Row:
        p, state = self.profile, self.stack.state
        pid = state.runtime_pid
        baseline = flood.rss_mb(pid)
        body = flood.hostile_body()
        peak = [baseline]
        done = [False]

        def sample() -> None:
            while not done[0]:
                peak[0] = max(peak[0], flood.rss_mb(pid))
                time.sleep(0.02)

        import threading

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = flood.flood(state.api_port, state.api_key(), [[body] for _ in range(p.hostile_bodies)], timeout=120)
        done[0] = True
        sampler.join()
        time.sleep(3)
        after = flood.rss_mb(pid)
        ok_statuses = set(result.statuses) <= {400, 503} and not result.failures
        small = result.largest_response < 16_384
        note = (f"{p.hostile_bodies} x 1 MiB, 90k keys: {dict(result.statuses)}, largest answer "
                f"{result.largest_response} B; RSS {baseline:.0f} -> peak {peak[0]:.0f} -> {after:.0f} MB")
        ok = ok_statuses and small and peak[0] <= RSS_LIMIT_MB and after <= baseline + 50
        return Row("", 0, 0, 0, 0, 0, self.dead_letters(), note, ok)

    def slow_clients(self) -> Row:
        from txpipe_cli.local.server import Limits

        p, state = self.profile, self.stack.state
        hold = Limits.header_seconds + 5
        started = time.monotonic()
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(flood.slow_clients, state.api_port, p.slow_clients, hold)
            time.sleep(1)
            served = flood.flood(state.api_port, state.api_key(), [[flood.valid_order("slow-ok-1", 1)]])
            closes = future.result(timeout=hold + 30)
        held = [kind for kind, closed in closes if closed is None]
        latest = max((closed for _, closed in closes if closed is not None), default=0.0)
        row = self.settle("slow-ok-", 1, served.statuses.get(202, 0), "")
        row.note = (f"{p.slow_clients} idle/trickling connections: {len(held)} still open after {hold:g} s, last "
                    f"closed at {latest:.1f} s; a valid order meanwhile: {dict(served.statuses)} "
                    f"({time.monotonic() - started:.0f} s)")
        row.ok = row.ok and not held and served.statuses.get(202) == 1
        return row


TRIALS: dict[str, Callable[[Trials], Row]] = {
    "kill -9 runtime under send": Trials.kill_runtime_under_send,
    "kill -9 postmaster under send": Trials.kill_postmaster_under_send,
    "kill -9 runtime mid sync-now": Trials.kill_runtime_mid_sync,
    "OLTP outage under load": lambda h: h.database_outage("txpipe_oltp"),
    "warehouse outage under load": lambda h: h.database_outage("txpipe_warehouse"),
    "hung runtime (SIGSTOP)": Trials.hung_runtime,
    "send killed and re-run": Trials.send_killed_and_rerun,
    "flood: keep-alive clients": Trials.flood_of_clients,
    "flood: hostile 1 MiB bodies": Trials.hostile_bodies,
    "flood: idle and slow clients": Trials.slow_clients,
    "re-send after append": fault_trials.resend_after_append,
    "refresh under a live sync": fault_trials.refresh_under_live_sync,
    "second Unix user": fault_trials.second_user,
    "upgrade from the previous release under load": fault_trials.upgrade_under_load,
    "full disk (tmpfs)": fault_trials.full_disk,
}


def run(profile: Profile, only: list[str] | None = None, log: Callable[[str], None] = print) -> list[Row]:
    import tempfile

    rows: list[Row] = []
    with Stack.deployed(customers=CUSTOMERS) as stack, \
            tempfile.TemporaryDirectory(prefix="txpipe-faults-", dir="/var/tmp") as work:
        harness = Trials(stack, profile, Path(work), log)
        for name, trial in TRIALS.items():
            if only and not any(word in name for word in only):
                continue
            log(f"trial: {name} ...")
            started = time.monotonic()
            stack.reset()
            try:
                row = trial(harness)
            except Exception as exc:  # noqa: BLE001 - a trial that breaks is a failed row, and the rest still run
                row = Row("", 0, 0, 0, 0, 0, 0, f"harness error: {type(exc).__name__}: {exc}"[:200], False)
                stack.txpipe("deploy", "--sync-every", "12h", "--sla", "86400", check=False)
            row.trial = name
            rows.append(row)
            log(f"  {'ok' if row.ok else 'FAILED'} in {time.monotonic() - started:.0f} s: {row.note}")
    return rows


def render(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("trial", "accepted", "OLTP", "warehouse", "doubled", "lost", "dead letters", "note", title="faults")
    for row in rows:
        colour = "green" if row.ok else "red"
        table.add_row(f"[{colour}]{row.trial}[/]", *(str(v) for v in (row.accepted, row.oltp, row.warehouse,
                                                                    row.doubled, row.lost, row.dead_letters)),
                      row.note)
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI profile: short outages, smaller floods")
    parser.add_argument("--only", default="", help="comma-separated words; run the trials whose name has one")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = run(SHORT if args.short else FULL, [w for w in args.only.split(",") if w],
               log=lambda line: print(line, file=sys.stderr, flush=True))
    render(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    sys.exit(0 if all(r.ok for r in rows) else 1)


if __name__ == "__main__":
    main()

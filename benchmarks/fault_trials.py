"""The fault harness's trials of issue 15: what an operator who cannot afford a wrong number fears next.

- a re-send after appending to the file (and the file turned into a JSON array): nothing doubled;
- the views refreshed again and again under a sync every second: the two views always agree;
- a second Unix user on the machine: refused by the dashboard, the lock, the state directory, the invoke
  socket and the API;
- an upgrade from an earlier release under load, then an OLTP outage: the unchosen defaults of that release
  (5 deliveries before the dead-letter queue) do not survive the upgrade, so the outage dead-letters nothing;
- a full disk under PostgreSQL (a small tmpfs, where the machine allows one): status says so, the API answers
  503, and once space is freed `txpipe deploy` brings every accepted order in.

Each is a function of the Harness (benchmarks/faults.py) returning its row; the ones that need a deployment
of their own (the upgrade, the disk) make it and destroy it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.stack import REPO, Stack, txpipe_executable

if TYPE_CHECKING:
    from benchmarks.fault_harness import Harness, Row

# The last release whose defaults the operator never chose but its state recorded as if chosen (among them
# max_receive_count 5): tests/fixtures/release-ab5771d holds the state files it wrote.
PREVIOUS_RELEASE = "ab5771d"
VIEWS_DISAGREE_SQL = """
SELECT count(*) FROM state_sales s
FULL JOIN (SELECT state, SUM(total_pizzas) AS pizzas, SUM(gross_sales) AS sales FROM sales_by_state GROUP BY state) b
  ON b.state = s.state
WHERE s.state IS NULL OR b.state IS NULL OR s.total_pizzas <> b.pizzas OR s.gross_sales <> b.sales"""


def _row(**fields: Any) -> Row:
    from benchmarks.fault_harness import Row

    return Row(**{"trial": "", "accepted": 0, "oltp": 0, "warehouse": 0, "doubled": 0, "lost": 0,
                  "dead_letters": 0, "note": "", "ok": True, **fields})


def resend_after_append(h: Harness) -> Row:
    """Send a file, append one order, send again, then send it as a JSON array under the same name."""
    n = h.profile.send_orders
    path, price = h.order_file("append", n)
    first = h.send(path)
    with path.open("a") as handle:
        handle.write(h.order_line(n, price))
    again = h.send(path)
    array = path.with_suffix(".json")
    array.write_text(json.dumps([json.loads(line) for line in path.read_text().splitlines()], indent=1))
    third = h.send(array)
    row = h.settle(price, n + 1, n + 1, "")
    row.note = (f"sent {first['accepted']}, appended 1, sent again: {again['accepted']} accepted; as a JSON "
                f"array: {third['accepted']}; stored {row.oltp} of {n + 1}")
    row.ok = row.ok and first["accepted"] == n and again["accepted"] == third["accepted"] == n + 1
    return row


def refresh_under_live_sync(h: Harness, refreshes: int = 6) -> Row:
    """A paced send and a sync every second while the views refresh `refreshes` times: after each, the per-state
    totals of sales_by_state equal state_sales (one snapshot for both), and none is behind the other."""
    h.stack.deploy(sync_every="1s", sla=900)
    count = h.profile.outage_rate * (refreshes * 3 + 6)
    path, price = h.order_file("refresh-live", count)
    proc = h.send(path, rate=h.profile.outage_rate, wait=False)
    disagreeing: list[int] = []
    try:
        for _ in range(refreshes):
            time.sleep(2)  # spread over the send: each refresh meets batches the sync is committing
            h.stack.txpipe_json("refresh-views")
            disagreeing.append(int(h.sql("warehouse", VIEWS_DISAGREE_SQL)[0][0]))
    finally:
        out, _ = proc.communicate(timeout=600)
        h.stack.deploy(sync_every="12h", sla=86400)
    sent = json.loads(out) if out.strip() else {"accepted": 0}
    row = h.settle(price, count, sent["accepted"], "")
    bad = [n for n in disagreeing if n]
    row.note = (f"{refreshes} refreshes under a sync every 1 s and {h.profile.outage_rate} orders/s: "
                f"{len(bad)} left the views disagreeing (states per refresh: {disagreeing})")
    row.ok = row.ok and len(disagreeing) == refreshes and not bad and sent["accepted"] == count
    return row


# As the second user: what it reaches (argv: state dir, lock, invoke socket, dashboard base URL, API port).
OTHER_USER_CLIENT = """
import fcntl, json, os, socket, sys, urllib.error, urllib.request
home, lock, sock, dashboard, api = sys.argv[1:6]
def attempt(action):
    try:
        return action()
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__
def status(request):
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status
def take_lock():
    fcntl.flock(open(lock), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return "taken"
order = json.dumps({"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 9.99}).encode()
print(json.dumps({
    "dashboard GET /api/states/TX": attempt(lambda: status(dashboard + "api/states/TX")),
    "dashboard POST /api/refresh": attempt(lambda: status(urllib.request.Request(
        dashboard + "api/refresh", data=b"", method="POST", headers={"X-Txpipe-Dashboard": "1"}))),
    "the deploy lock": attempt(take_lock),
    "the state directory": attempt(lambda: len(os.listdir(home))),
    "the invoke socket": attempt(lambda: socket.socket(socket.AF_UNIX).connect(sock)),
    "POST /orders without the key": attempt(lambda: status(urllib.request.Request(
        f"http://127.0.0.1:{api}/orders", data=order, method="POST", headers={"Content-Type": "application/json"}))),
}))
"""
REFUSED = {401, 403, "PermissionError"}


def second_user(h: Harness) -> Row:
    """Another local user, with a deployment and its dashboard running: every door is shut."""
    from tests.support import unix_user

    reason = unix_user.why_not()
    if reason:
        return _row(note=f"skipped: {reason}")
    user, state = unix_user.other_user(), h.stack.state
    with _dashboard(h.stack) as base:
        seen = unix_user.answer(unix_user.as_other(user, OTHER_USER_CLIENT, str(h.stack.home),
                                                   str(h.stack.home / ".lock"), str(state.invoke_socket),
                                                   base, str(state.api_port)))
    opened = {door: what for door, what in seen.items() if what not in REFUSED}
    note = f"{unix_user.OTHER_USER}: " + ", ".join(f"{door} {what}" for door, what in seen.items())
    return _row(dead_letters=h.dead_letters(), note=note, ok=not opened)


@contextlib.contextmanager
def _dashboard(stack: Stack) -> Iterator[str]:
    """`txpipe dashboard` running; yields its address without the token (what another user could guess)."""
    from txpipe_cli.local.target import free_port

    proc = subprocess.Popen([*txpipe_executable(), "dashboard", "--port", str(free_port()), "--json"],  # noqa: S603
                            env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"txpipe dashboard did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield json.loads(line)["url"].split("?", 1)[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def upgrade_under_load(h: Harness) -> Row:
    """The previous release deploys (its defaults recorded as if chosen: 5 deliveries before the DLQ) and takes a
    paced send; today's `txpipe deploy` upgrades it mid-send; the same send again; then an OLTP outage under
    load: an upgrade that kept 5 would dead-letter what the outage delays."""
    from benchmarks.fault_harness import CUSTOMERS

    p = h.profile
    with _previous_release(h.workdir) as old_code, _undeployed() as stack:
        old = {**stack.env, "PYTHONPATH": str(old_code)}
        old_txpipe = [sys.executable, "-c", "from txpipe_cli.app import main; main()"]
        _run(old_txpipe + ["deploy", "--sync-every", "5s", "--sla", "900"], old, old_code)
        _run(old_txpipe + ["seed", "--generate", str(CUSTOMERS)], old, old_code)
        trial = _on(h, stack)
        path, price = trial.order_file("upgrade", p.send_orders)
        proc = trial.send(path, rate=p.send_rate, wait=False)
        trial.wait_until(lambda: trial.counts(price)[1] > p.send_orders // 4, 60)
        upgraded = stack.txpipe_json("deploy")
        proc.communicate(timeout=300)
        again = trial.send(path)
        moved = upgraded.get("settings_changed", {}).get("max_receive_count", {})
        outage = trial.database_outage("txpipe_oltp")
        row = trial.settle(price, p.send_orders, again["accepted"], "")
        row.dead_letters = trial.dead_letters()
        row.note = (f"{PREVIOUS_RELEASE} deployed, upgraded mid-send (runtime {upgraded['actions'].get('runtime')}; "
                    f"max_receive_count {moved.get('from')} -> {moved.get('to')}); same send again: "
                    f"{again['accepted']}; then {outage.note} ({outage.accepted} sent through it, "
                    f"{outage.dead_letters} dead letters)")
        row.ok = (row.ok and outage.ok and moved.get("to") == 1000 and again["accepted"] == p.send_orders
                  and row.dead_letters == 0)
        return row


@contextlib.contextmanager
def _undeployed() -> Iterator[Stack]:
    """A Stack over a fresh TXPIPE_HOME with nothing deployed yet; destroyed (by today's txpipe) on the way out."""
    import shutil

    home = Path(tempfile.mkdtemp(prefix="txpipe-faults-", dir="/var/tmp"))
    stack = Stack(home, {**os.environ, "TXPIPE_HOME": str(home)})
    stack.env.pop("TXPIPE_API_URL", None)
    try:
        yield stack
    finally:
        stack.txpipe("destroy", "--yes", check=False)
        shutil.rmtree(home, ignore_errors=True)


def _on(h: Harness, stack: Stack) -> Harness:
    """The harness `h` is (with its trials, such as database_outage), over `stack`."""
    return type(h)(stack, h.profile, h.workdir, h.log)


@contextlib.contextmanager
def _previous_release(workdir: Path) -> Iterator[Path]:
    """The previous release's source (git archive of PREVIOUS_RELEASE from this repository's history)."""
    target = Path(tempfile.mkdtemp(prefix="txpipe-previous-", dir=workdir))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE],  # noqa: S603, S607
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    yield target


def _run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    """A command of the previous release, run from its source directory: `python -c` puts the working directory
    first on sys.path, so from the repository it would import today's code instead."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False,  # noqa: S603
                          stdin=subprocess.DEVNULL, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:])} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")


TMPFS_MIB = 256
DISK_BATCH = 100  # orders per request while the disk is full


def _post_until_refused(stack: Stack, name: str, refusals: int = 3) -> tuple[int, int, float]:
    """Posts batches of orders (ids of their own) until the API refuses `refusals` of them (503: it cannot keep
    them) or 200 batches went in; returns (orders accepted, requests refused, the batches' price)."""
    state, price, accepted, refused = stack.state, 9.87, 0, 0  # below order_file's prices (10 to 18.99)
    for n in range(200):
        body = json.dumps([{"customer_id": 1 + i, "type": "veggie", "qty": 1, "retail_price": price,
                            "order_id": f"{name}-{n}-{i}"} for i in range(DISK_BATCH)])
        conn = http.client.HTTPConnection("127.0.0.1", state.api_port, timeout=30)
        try:
            conn.request("POST", "/orders", body=body, headers={"Content-Type": "application/json",
                                                                "x-api-key": state.api_key()})
            status = conn.getresponse().status
        finally:
            conn.close()
        if status == 202:
            accepted += DISK_BATCH
        elif status == 503:
            refused += 1
            if refused == refusals:
                break
        else:
            raise RuntimeError(f"the API answered {status} with the disk full")
    return accepted, refused, price


def full_disk(h: Harness) -> Row:
    """PostgreSQL's data on a small tmpfs, filled while orders arrive: status says disk full, the API answers 503;
    space freed and `txpipe deploy`: every accepted order stored once, none dead-lettered."""
    from benchmarks.fault_harness import CUSTOMERS
    from tests.support.disk import fill, move_postgres_to_tmpfs, release_tmpfs

    with Stack.deployed(customers=CUSTOMERS) as stack:
        moved = move_postgres_to_tmpfs(stack.state, TMPFS_MIB, Path(tempfile.mkdtemp(dir=h.workdir)))
        stack.txpipe_json("deploy")
        if isinstance(moved, str):
            return _row(note=f"skipped: {moved}")
        try:
            trial = _on(h, stack)
            path, price = trial.order_file("disk", h.profile.send_orders)
            trial.send(path)
            filled = fill(moved)
            status = stack.txpipe("status", "--json", check=False)
            problems = json.loads(status.stdout or "{}").get("problems", [])
            during, refused, extra_price = _post_until_refused(stack, "disk-full")
            (moved / "filler").unlink()
            stack.txpipe_json("deploy")
            trial.wait_stored(extra_price, during, 300)
            row = trial.settle(price, h.profile.send_orders, h.profile.send_orders, "")
            late = trial.settle(extra_price, during, during, "")
            said = next((p for p in problems if p.startswith("disk full")), "no disk problem named")
            row.accepted = h.profile.send_orders + during
            row.oltp, row.warehouse = row.oltp + late.oltp, row.warehouse + late.warehouse
            row.doubled, row.lost = row.doubled + late.doubled, row.lost + late.lost
            row.note = (f"{TMPFS_MIB} MiB tmpfs, {filled / 2**20:.0f} MiB filler: status exit {status.returncode} "
                        f"({said[:60]}); then {during} more orders accepted and 503 x {refused}; freed, deploy: "
                        f"all {row.accepted} accepted stored")
            row.ok = row.ok and late.ok and status.returncode != 0 and said.startswith("disk full") and refused == 3
            return row
        finally:
            stack.txpipe("destroy", "--yes", check=False)
            release_tmpfs(moved)

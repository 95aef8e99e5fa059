"""`txpipe logs` on the local target after a day's work, and Ctrl-C where it is the way to stop (`logs -f`, the
dashboard: "stopped", exit 0) and where it is not (`sync-now`: the sync goes on, exit 130)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lambdas.core.db import connect_postgres
from tests.support.local_cli import Cli, local_home, post, wait_for

CUSTOMERS = 300
GOOD = 700  # two requests: 500 and 200
STORED = GOOD


def order(i: int) -> dict[str, Any]:
    return {"customer_id": 1 + i % CUSTOMERS, "type": ["cheese", "veggie"][i % 2], "qty": 1 + i % 3,
            "retail_price": 11.5}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """seed, a send of 700 orders, a request of 2 the API refuses, sync-now, refresh-views, status."""
    with local_home(tmp_path_factory, "e2e-logs") as cli:
        cli.json("seed", "--generate", str(CUSTOMERS))
        files = tmp_path_factory.mktemp("orders")
        (files / "good.json").write_text(json.dumps([order(i) for i in range(GOOD)]))
        assert cli.json("send", str(files / "good.json"))["accepted"] == GOOD
        # refused by the API (send would check it first and send nothing)
        bad = json.dumps([order(0), {**order(1), "qty": 0}]).encode()
        assert post(cli.state, bad)[0] == 400
        assert cli.json("sync-now")["synced"] == STORED
        cli.json("refresh-views")
        cli.json("status")
        yield cli


def records(cli: Cli, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli("logs", *args, "--json").stdout.splitlines()]


def test_ingest_says_accepted_and_refused_per_request(cli: Cli) -> None:
    lines = records(cli, "ingest")
    assert [(r["orders"], r["accepted"], r["refused"], r["status"]) for r in lines] == [
        (500, 500, 0, 202), (200, 200, 0, 202), (2, 0, 2, 400)]
    assert lines[2]["level"] == "WARNING"
    assert lines[2]["message"].startswith("refused a request of 2 orders: index 1 qty")
    assert {r["service"] for r in lines} == {"ingest"}
    text = cli("logs", "ingest").stdout
    assert "accepted 500 orders\n    orders=500 accepted=500 refused=0 status=202" in text  # figures folded under


def test_store_says_what_became_of_each_batch(cli: Cli) -> None:
    lines = records(cli, "store")
    assert lines and sum(r["stored"] for r in lines) == STORED
    assert {(r["already_present"], r["rejected"], r["retried"], r["dead_lettered"]) for r in lines} == {(0, 0, 0, 0)}
    assert all(r["message"].startswith(f"{r['messages']} message") for r in lines)
    assert " INFO    store   " in cli("logs", "store").stdout


def test_sync_says_what_moved(cli: Cli) -> None:
    [line] = [r for r in records(cli, "sync") if r["trigger"] == "txpipe.sync-now"]
    assert (line["message"], line["moved"], line["already_present"], line["pending"]) == (
        f"moved {STORED} orders", STORED, 0, 0)
    assert line["seconds"] > 0 and line["rows_per_second"] == round(STORED / line["seconds"])
    text = cli("logs", "sync").stdout
    assert f"moved {STORED} orders\n    moved={STORED} already_present=0 pending=0" in text and "invoked in" not in text


def test_refresh_names_the_views(cli: Cli) -> None:
    [line] = records(cli, "refresh")
    assert (line["message"], line["views"]) == ("refreshed 2 views", ["sales_by_state", "state_sales"])
    assert "views=sales_by_state,state_sales seconds=" in cli("logs", "refresh").stdout


def test_ops_hides_the_clis_own_reads_unless_asked(cli: Cli) -> None:
    shown = [r["action"] for r in records(cli, "ops")]
    assert "migrate" in shown and "customers_commit" in shown
    assert not {"status", "queue_depth"} & set(shown)
    for flags in (["--debug"], ["--level", "debug"]):
        every = records(cli, "ops", *flags)
        assert {"status", "queue_depth"} <= {r.get("action") for r in every}
        assert {r["level"] for r in every if r.get("action") == "status"} == {"DEBUG"}
    assert "ops     status\n    action=status" in cli("logs", "ops", "--debug").stdout


def test_an_empty_window_says_so(cli: Cli) -> None:
    time.sleep(1.2)
    empty = cli("logs", "store", "--since", "1s")
    assert (empty.stdout, empty.stderr) == ("", "no lines in the last 1s for store\n")
    assert cli("logs", "store", "--since", "1s", "--json").stdout == ""


def test_no_order_and_no_secret_in_the_log(cli: Cli) -> None:
    text = "".join(path.read_text() for path in cli.state.log_dir.glob("runtime.log*"))
    secrets = [json.loads(path.read_text()) for path in cli.state.secret_dir.glob("*.json")]
    assert all((s.get("password") or s.get("api_key")) not in text for s in secrets)
    assert '"customer_id"' not in text and "retail_price\":" not in text
    assert not re.search(r"(?<![\d:])11\.5(?!\d)", text)  # the order's price; a time such as 22:34:11.523 is not


class Process:
    """`txpipe ARGS` in a subprocess, its output read line by line as it comes."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, "TXPIPE_HOME": str(home), "TXPIPE_TARGET": "local"}
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-c", "from txpipe_cli.app import main; main()", *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # Python turns SIGINT into KeyboardInterrupt only if it was not ignored when it started, as it is
            # for the background jobs of a shell without job control.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
        self.lines: dict[str, queue.Queue[str]] = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.seen: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for name in self.lines:
            threading.Thread(target=self._read, args=(name,), daemon=True).start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.lines[name].put(line.rstrip("\n"))

    def wait_for(self, name: str, condition: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines[name].get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.seen}"
                continue
            self.seen[name].append(line)
            if condition(line):
                return line
        raise AssertionError(f"no such line on {name} in {timeout} s: {self.seen}")

    def interrupt(self, timeout: float = 30) -> tuple[int, str]:
        """Ctrl-C: SIGINT, then the exit code and everything it printed on stderr."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # the reader threads drain the pipes
        while not self.lines["stderr"].empty():
            self.seen["stderr"].append(self.lines["stderr"].get())
        return code, "\n".join(self.seen["stderr"])


def test_ctrl_c_stops_logs_follow_cleanly(cli: Cli) -> None:
    follow = Process(cli.home, "logs", "sync", "--follow", "--since", "1h")
    try:
        follow.wait_for("stdout", lambda line: f"moved {STORED} orders" in line)
        cli.json("sync-now")  # a new line while it follows
        follow.wait_for("stdout", lambda line: "nothing to move" in line)
        code, stderr = follow.interrupt()
    finally:
        follow.proc.kill()
    assert (code, stderr) == (0, "stopped")


def test_ctrl_c_stops_the_dashboard_cleanly(cli: Cli) -> None:
    dashboard = Process(cli.home, "dashboard", "--port", "0", "--json")
    try:
        url = urlsplit(json.loads(dashboard.wait_for("stdout", lambda line: line.startswith('{"url"')))["url"])
        served = http.client.HTTPConnection("127.0.0.1", url.port, timeout=10)
        served.request("GET", "/api/freshness")  # no token: 401, but served
        assert served.getresponse().status == 401
        served.close()
        code, stderr = dashboard.interrupt()
    finally:
        dashboard.proc.kill()
    assert (code, stderr) == (0, "stopped")


def test_ctrl_c_leaves_a_sync_now_running_and_says_so(cli: Cli, tmp_path: Path) -> None:
    """sync-now interrupted while its sync waits on the warehouse: exit 130 with what goes on; the sync ends
    in the runtime once the warehouse lets it, and logs what it moved."""
    more = tmp_path / "more.json"
    more.write_text(json.dumps([order(i) for i in range(40)]))
    cli.json("send", str(more))
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM outbox")[0][0] == 40, what="40 orders stored")
    lock = connect_postgres(cli.state.endpoint("warehouse"))
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE orders_fact IN ACCESS EXCLUSIVE MODE")  # the sync's merge waits on it
        sync = Process(cli.home, "sync-now", "--queue-wait", "0")
        try:
            wait_for(lambda: cli.sql("warehouse", "SELECT count(*) FROM pg_locks WHERE NOT granted "
                                                  "AND relation = 'orders_fact'::regclass")[0][0] > 0,
                     what="the sync waiting on the warehouse")
            code, stderr = sync.interrupt()
        finally:
            sync.proc.kill()
        assert code == 130
        assert stderr == "interrupted: the sync continues in the runtime; `txpipe status` shows when it ends"
    finally:
        lock.rollback()
        lock.close()
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM outbox")[0][0] == 0, what="the sync to end")
    assert cli.sql("warehouse", "SELECT count(*) FROM orders_fact")[0][0] == STORED + 40
    wait_for(lambda: any(r["moved"] == 40 for r in records(cli, "sync")), what="the sync's line")


def test_ctrl_c_before_the_sync_started_says_none_was(cli: Cli) -> None:
    """Interrupted while it still waits for the queue to drain: no sync was started, and it says so."""
    runtime = cli.state.runtime_pid
    os.kill(runtime, signal.SIGSTOP)  # the queue-depth read sync-now makes first then waits
    try:
        waiting = Process(cli.home, "sync-now", "--queue-wait", "60")
        try:
            wait_for(lambda: _has_socket(waiting.proc.pid), what="sync-now asking the runtime")
            code, stderr = waiting.interrupt()
        finally:
            waiting.proc.kill()
    finally:
        os.kill(runtime, signal.SIGCONT)
    assert code == 130
    assert stderr == "interrupted: no sync was started; the scheduled sync moves what is stored"


def _has_socket(pid: int) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd).startswith("socket:") for fd in fds.iterdir() if fd.is_symlink())

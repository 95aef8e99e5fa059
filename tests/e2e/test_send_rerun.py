"""`txpipe send` re-run after the local runtime dies mid-send: every order stored once, none doubled or lost.

One deployment for the module under a temporary TXPIPE_HOME, made with the CLI as an operator
would (the pattern of test_local_target.py). The send runs as a real subprocess so that its
exit code and output are the operator's; the runtime is killed with SIGKILL under it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_target import Cli, local_home, wait_for

CUSTOMERS = 300
ORDERS = 3000


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-rerun") as cli:
        assert cli.json("seed", "--generate", str(CUSTOMERS))["customers"] == CUSTOMERS
        yield cli


def start_send(home: Path, path: Path) -> subprocess.Popen[str]:
    """`txpipe send FILE --batch 50 --rate 1000 --json` as its own process (3 s of paced requests)."""
    command = [sys.executable, "-c", "from txpipe_cli.app import main; main()",
               "send", str(path), "--batch", "50", "--rate", "1000", "--json"]
    env = {**os.environ, "TXPIPE_HOME": str(home), "TXPIPE_TARGET": "local"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603


def test_rerun_after_the_runtime_is_killed_stores_each_order_once(cli: Cli, tmp_path: Path) -> None:
    """Kill the runtime once a 3,000-order send is under way: it exits 1 with its counts; after deploy restarts the
    runtime, the same command again leaves exactly 3,000 orders in OLTP and the warehouse."""
    path = tmp_path / "orders.ndjson"
    path.write_text("".join(json.dumps({"customer_id": 1 + i % CUSTOMERS, "type": ["cheese", "veggie"][i % 2],
                                        "qty": 1 + i % 3, "retail_price": 12.99}) + "\n" for i in range(ORDERS)))
    prefix = f"send-{hashlib.sha256(path.read_bytes()).hexdigest()[:24]}-1-"

    proc = start_send(cli.home, path)
    # Kill once the first orders are stored (about 1 s in): the process's own start takes most of a second.
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders")[0][0] > 0, timeout=30,
             what="the first stored orders")
    runtime_pid = json.loads((cli.home / "local.json").read_text())["runtime_pid"]
    os.kill(runtime_pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    first = json.loads(stdout)
    assert first["interrupted"] and "failed 4 times" in first["interrupted"], first
    assert first["refused"] == 0 and first["orders"] == ORDERS
    assert first["accepted"] + first["not_sent"] == ORDERS
    assert 0 < first["accepted"] < ORDERS, first  # killed mid-send, not before or after it
    assert "orders not sent" in stderr
    print(f"\nruntime killed mid-send: accepted {first['accepted']}, not sent {first['not_sent']}")

    assert cli.json("deploy")["actions"]["runtime"] == "restarted"
    proc = start_send(cli.home, path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    second = json.loads(stdout)
    assert (second["accepted"], second["refused"], second["not_sent"]) == (ORDERS, 0, 0)

    count = "SELECT count(DISTINCT order_id), count(*) FROM {} WHERE order_id LIKE %s"
    wait_for(lambda: cli.sql("oltp", count.format("orders"), (prefix + "%",)) == [(ORDERS, ORDERS)],
             timeout=30, what=f"{ORDERS} orders in OLTP")
    wait_for(lambda: cli.json("status")["pipeline"]["queue"]["visible"] == 0, timeout=30,
             what="an empty queue")
    time.sleep(0.5)  # a late duplicate, were there one, would be stored by now
    assert cli.sql("oltp", "SELECT count(DISTINCT order_id), count(*) FROM orders") == [(ORDERS, ORDERS)]
    assert cli.sql("oltp", "SELECT count(*) FROM rejected_orders") == [(0,)]

    assert cli.json("sync-now")["pending"] == 0
    assert cli.sql("warehouse", count.format("orders_fact"), (prefix + "%",)) == [(ORDERS, ORDERS)]

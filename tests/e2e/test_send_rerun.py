"""`txpipe send` re-run after the local runtime dies mid-send, or after the file was appended to and re-formatted:
every order stored once, none doubled or lost.

One deployment for the module under a temporary TXPIPE_HOME, made with the CLI as an operator
would (the pattern of test_local_target.py). The send runs as a real subprocess so that its
exit code and output are the operator's; the runtime is killed with SIGKILL under it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_cli import Cli, local_home, wait_for

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
    # 300 different orders, each 10 times: the ids tell identical orders apart by their number in the file.
    path.write_text("".join(json.dumps({"customer_id": 1 + i % CUSTOMERS, "type": ["cheese", "veggie"][i % 2],
                                        "qty": 1 + i % 3, "retail_price": 12.99}) + "\n" for i in range(ORDERS)))
    # This test's orders: the other test's cost more.
    count = "SELECT count(DISTINCT order_id), count(*) FROM {} WHERE retail_price = 12.99"

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

    wait_for(lambda: cli.sql("oltp", count.format("orders")) == [(ORDERS, ORDERS)],
             timeout=30, what=f"{ORDERS} orders in OLTP")
    settle(cli)
    assert cli.sql("oltp", count.format("orders")) == [(ORDERS, ORDERS)]
    assert cli.sql("oltp", "SELECT count(*) FROM rejected_orders") == [(0,)]

    assert cli.json("sync-now")["pending"] == 0
    assert cli.sql("warehouse", count.format("orders_fact")) == [(ORDERS, ORDERS)]


def settle(cli: Cli) -> None:
    """Waits for the queue to empty, and a little more: a late duplicate, were there one, would be stored by then."""
    wait_for(lambda: cli.json("status")["pipeline"]["queue"]["visible"] == 0, timeout=30, what="an empty queue")
    time.sleep(0.5)


APPENDED = 1000


def test_sent_appended_and_sent_again_stores_only_the_new_order(cli: Cli, tmp_path: Path) -> None:
    """The issue's case through the real local target: 1,000 orders sent, one appended, the file sent again:
    1,001 orders stored, not 2,001; the same orders re-saved as a CRLF JSON array and sent a third time: still
    1,001, in OLTP and in the warehouse."""
    orders = [{"customer_id": 1 + i % CUSTOMERS, "type": ["supreme", "pepperoni"][i % 2], "qty": 1 + i % 4,
               "retail_price": 13.49} for i in range(APPENDED)]  # 300 different orders, 3 or 4 times each
    path = tmp_path / "orders.ndjson"
    mine = "SELECT count(DISTINCT order_id), count(*) FROM {} WHERE retail_price = 13.49"

    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    assert cli.json("send", str(path))["accepted"] == APPENDED
    wait_for(lambda: cli.sql("oltp", mine.format("orders")) == [(APPENDED, APPENDED)], timeout=30,
             what=f"{APPENDED} orders in OLTP")

    orders.append({"customer_id": 7, "type": "veggie", "qty": 2, "retail_price": 13.49})
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    assert cli.json("send", str(path))["accepted"] == APPENDED + 1
    array = tmp_path / "orders.json"
    array.write_bytes(json.dumps(orders, indent=2).replace("\n", "\r\n").encode())
    assert cli.json("send", str(array))["accepted"] == APPENDED + 1

    wait_for(lambda: cli.sql("oltp", mine.format("orders"))[0][1] >= APPENDED + 1, timeout=30,
             what="the appended order in OLTP")
    settle(cli)
    stored = cli.sql("oltp", mine.format("orders"))
    print(f"\nsent {APPENDED}, appended 1, sent twice more (NDJSON, then a CRLF JSON array): {stored[0][1]} rows")
    assert stored == [(APPENDED + 1, APPENDED + 1)]
    assert cli.json("sync-now")["pending"] == 0
    assert cli.sql("warehouse", mine.format("orders_fact")) == [(APPENDED + 1, APPENDED + 1)]

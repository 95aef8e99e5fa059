"""The local target end to end, through the CLI as an operator runs it.

One deployment per module (deploying takes about two seconds); tests run in file
order and each leaves the deployment running for the next. TXPIPE_HOME sits under
pytest's 0700 tmp directory, so the PostgreSQL server (unprivileged when run as
root) must fall back to a data directory it can reach.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lambdas.core.queue import PgQueue
from tests.support.local_cli import Cli, local_home, post, wait_for
from txpipe_cli.local.pg import PgServer, find_bindir
from txpipe_cli.local.processes import pid_is_runtime
from txpipe_cli.synthetic import iter_customers

CUSTOMERS = 300


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e", deploy=False) as cli:
        yield cli


def test_deploy_creates_every_part(cli: Cli) -> None:
    """A first deploy creates the server, databases, runtime and schema, all reported alive."""
    started = time.monotonic()
    result = cli.json("deploy")
    assert time.monotonic() - started < 20
    assert result["changed"] is True
    assert result["actions"]["postgres"] == "created"
    assert result["actions"]["runtime"] == "started"
    assert result["actions"]["schema"].startswith("migrated")
    status = cli.json("status")
    assert all(part["alive"] for part in status["parts"].values())
    assert status["pipeline"]["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0}


def test_deploy_again_is_a_no_op(cli: Cli) -> None:
    """A second deploy with the same settings changes nothing and says so."""
    pid = cli.state.runtime_pid
    result = cli.json("deploy")
    assert result["changed"] is False
    assert set(result["actions"].values()) <= {"running", "present", "up to date"}
    assert cli.state.runtime_pid == pid
    assert "Nothing to change" in cli("deploy").stdout


def test_endpoint_prints_the_orders_url_and_the_key_is_required(cli: Cli) -> None:
    """endpoint gives the URL clients POST to and, asked, the API key; without the key the API answers 403."""
    assert cli.json("endpoint") == {"url": f"{cli.state.api_url}/orders", "api_key_required": True}
    key = cli.json("endpoint", "--show-key")["api_key"]
    assert key == cli.state.api_key() and len(key) >= 32
    assert "x-api-key" in cli("endpoint").stdout and key not in cli("endpoint").stdout
    body = json.dumps({"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 9.99}).encode()
    assert post(cli.state, body, {"x-api-key": ""}) == (403, {"message": "Forbidden"})
    assert post(cli.state, body, {"x-api-key": key[:-1] + "x"}) == (403, {"message": "Forbidden"})


def test_deploy_refuses_a_schedule_that_misses_the_sla(cli: Cli) -> None:
    """A 15-minute sync cannot meet a 900 s SLA: refused as a bad option (exit 2) with a reason, nothing changed."""
    before = cli.state.settings
    result = cli("deploy", "--sync-every", "15m", code=2)
    assert "cannot meet the 900 s SLA" in result.output
    assert cli.state.settings == before


def test_seed_send_sync_report(cli: Cli, tmp_path: Path) -> None:
    """Orders sent through the API reach OLTP, then the warehouse, and the report matches them."""
    assert cli.json("seed", "--generate", str(CUSTOMERS))["customers"] == CUSTOMERS
    orders = [{"customer_id": 1 + i % CUSTOMERS, "type": ["cheese", "veggie", "supreme"][i % 3],
               "qty": 1 + i % 4, "retail_price": [12.99, 13.5, 16.99][i % 3]} for i in range(120)]
    path = tmp_path / "orders.ndjson"
    path.write_text("\n".join(json.dumps(o) for o in orders) + "\n")

    sent = cli.json("send", str(path), "--batch", "50")
    assert (sent["orders"], sent["accepted"], sent["refused"], sent["not_sent"]) == (120, 120, 0, 0)
    moved = cli.json("sync-now")  # it first waits for the queue to empty: every accepted order is synced
    assert (moved["synced"], moved["pending"], moved["still_queued"]) == (120, 0, 0)

    sla = cli.json("sla-report")
    assert set(sla) == {"sla_seconds", "oltp_orders", "warehouse_orders", "synced", "pending",
                        "oldest_pending_seconds", "lag_seconds", "breaches", "last_sync_at", "history"}
    assert (sla["oltp_orders"], sla["warehouse_orders"], sla["synced"], sla["pending"]) == (120, 120, 120, 0)
    assert sla["breaches"] == 0 and 0 < sla["lag_seconds"]["p50"] <= sla["lag_seconds"]["max"] < 60
    assert cli("sla-report", "--sla", "0.001", code=3).exit_code == 3

    assert cli.json("refresh-views")["refreshed"] == ["sales_by_state", "state_sales"]
    state_of = {c[0]: c[1] for c in iter_customers(CUSTOMERS)}
    state = state_of[orders[0]["customer_id"]]
    mine = [o for o in orders if state_of[o["customer_id"]] == state]
    report = cli.json("report", "--state", state)["states"][0]
    assert report["total_pizzas"] == sum(o["qty"] for o in mine)
    assert report["gross_sales"] == float(sum(o["qty"] * Decimal(str(o["retail_price"])) for o in mine))
    assert report["unique_customers"] == len({o["customer_id"] for o in mine})
    assert [row["pizza_type"] for row in report["top_pizzas"]] == sorted(
        {o["type"] for o in mine},
        key=lambda t: (-sum(o["qty"] for o in mine if o["type"] == t),
                       -sum(o["qty"] * Decimal(str(o["retail_price"])) for o in mine if o["type"] == t), t),
    )[:3]
    assert "top pizza types" in cli("report", "--state", state).stdout


def test_send_refuses_a_bad_order_and_sends_the_good_one(cli: Cli, tmp_path: Path) -> None:
    """A file with one bad order: it is refused by its position with the reason, exit 1; the good one is stored."""
    before = cli.sql("oltp", "SELECT count(*) FROM orders")[0][0]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"customer_id": 1, "type": "cheese", "qty": 1, "retail_price": 9.99},
                                {"customer_id": 1, "type": "Cheese", "qty": 1, "retail_price": 9.99}]))
    result = cli("send", str(path), code=1)
    assert "index 1" in result.output and "type" in result.output
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders")[0][0] == before + 1, what="the good order")
    time.sleep(0.5)  # give the pollers time to (wrongly) store something more
    assert cli.sql("oltp", "SELECT count(*) FROM orders")[0][0] == before + 1
    assert cli.json("status")["pipeline"]["queue"]["visible"] == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"customer_id": 1, "type": "cheese"', 400),
        (b'{"customer_id": 1, "type": "cheese", "qty": NaN, "retail_price": 1}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"customer_id": 1' + b"0" * 5000 + b"}", 400),
        (b'{"customer_id": 1, "type": "\xff\xfe", "qty": 1, "retail_price": 1}', 400),
        (b"", 400),
        (b"x" * (1024 * 1024 + 1), 413),
    ],
    ids=["truncated", "nan", "deep-nesting", "huge-number", "bad-utf8", "empty", "oversized"],
)
def test_http_api_refuses_malformed_bodies(cli: Cli, body: bytes, status: int) -> None:
    """Malformed or oversized bodies get a 4xx with a reason, never a 5xx, and enqueue nothing."""
    code, answer = post(cli.state, body)
    assert code == status, answer
    assert answer.get("errors") or answer.get("error")
    assert cli.json("status")["pipeline"]["queue"]["visible"] == 0


def test_resent_order_id_never_doubles_and_conflicts_are_rejected(cli: Cli) -> None:
    """The same order_id twice is stored once; re-sent with other content it is kept as rejected."""
    order = {"customer_id": 2, "type": "pepperoni", "qty": 2, "retail_price": 14.99, "order_id": "e2e-dup-1"}
    assert post(cli.state, json.dumps(order).encode())[0] == 202
    assert post(cli.state, json.dumps(order).encode())[0] == 202
    assert post(cli.state, json.dumps({**order, "qty": 3}).encode())[0] == 202
    assert post(cli.state, json.dumps({**order, "order_id": "e2e-ghost", "customer_id": 10**12}).encode())[0] == 202

    wait_for(lambda: cli.json("status")["pipeline"]["rejected_orders"] == 2, what="two rejected orders")
    wait_for(lambda: cli.json("status")["pipeline"]["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0},
             what="an empty queue")
    assert cli.sql("oltp", "SELECT qty FROM orders WHERE order_id = 'e2e-dup-1'") == [(2,)]
    reasons = sorted(r[0] for r in cli.sql("oltp", "SELECT split_part(reason, '; ', 1) FROM rejected_orders"))
    assert reasons == ["order_id already used for a different order", "unknown customer_id"]


def test_status_shows_a_dead_runtime_and_deploy_restarts_it(cli: Cli) -> None:
    """Killing the runtime: status says dead and exits 1; deploy restarts it; orders flow again."""
    pid = cli.state.runtime_pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_is_runtime(pid), what="the runtime to die")
    dead = cli.json("status", code=1)
    assert dead["parts"]["runtime"]["alive"] is False
    assert dead["parts"]["postgres"]["alive"] is True

    assert cli.json("deploy")["actions"]["runtime"] == "restarted"
    assert cli.json("status")["parts"]["runtime"]["alive"] is True
    order = {"customer_id": 3, "type": "veggie", "qty": 1, "retail_price": 13.99, "order_id": "after-restart"}
    assert post(cli.state, json.dumps(order).encode())[0] == 202
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id = 'after-restart'")[0][0] == 1,
             what="the order stored after the restart")


def test_a_stopped_database_is_reported_and_restarted(cli: Cli) -> None:
    """PostgreSQL stopped under the runtime: status says dead; deploy restarts it; orders flow again."""
    state = cli.state
    PgServer(Path(state.pg_root), state.pg_port, state.pg_user, find_bindir()).stop()
    dead = cli.json("status", code=1)
    assert dead["parts"]["postgres"]["alive"] is False
    assert {"oltp", "warehouse", "queue"} <= set(dead["pipeline"]["errors"])
    assert dead["problems"][0] == "postgres dead"
    assert cli.json("deploy")["actions"]["postgres"] == "started"
    order = {"customer_id": 3, "type": "veggie", "qty": 1, "retail_price": 13.99, "order_id": "after-pg-restart"}
    assert post(cli.state, json.dumps(order).encode())[0] == 202
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id = 'after-pg-restart'")[0][0] == 1,
             what="the order stored after the database restart")
    assert cli.json("sync-now")["pending"] == 0


def test_poison_message_goes_to_the_dead_letter_queue(cli: Cli) -> None:
    """A message the store function cannot parse is dead-lettered on its first delivery, with its reason."""
    queue = PgQueue.from_endpoint(cli.state.endpoint("queue"), "orders")
    try:
        queue.send_batch(["this is not an order"])
        wait_for(lambda: queue.stats().dead_letters == 1, timeout=20, what="the poison message in the DLQ")
        assert queue.stats().visible == 0
        [dead] = queue.list_dead_letters(10)
        assert dead.receive_count == 1 and dead.reason.startswith("not a valid order message")
    finally:
        queue.close()
    assert cli.json("status", code=1)["pipeline"]["queue"]["dead_letters"] == 1
    assert cli.json("dlq", "purge", "--yes") == {"purged": 1}
    assert cli.json("status")["problems"] == []


def test_scheduled_sync_runs_without_sync_now(cli: Cli) -> None:
    """With a 1-second schedule, stored orders reach the warehouse on their own."""
    assert cli.json("deploy", "--sync-every", "1s")["actions"]["runtime"] == "updated"
    order = {"customer_id": 4, "type": "supreme", "qty": 2, "retail_price": 16.99, "order_id": "scheduled-1"}
    assert post(cli.state, json.dumps(order).encode())[0] == 202
    wait_for(lambda: cli.sql("warehouse", "SELECT count(*) FROM orders_fact WHERE order_id = 'scheduled-1'")[0][0]
             == 1, what="the scheduled sync")
    schedules = cli.json("status")["schedules"]
    assert schedules["sync"]["every_seconds"] == 1.0
    assert schedules["sync"]["last_run"]["result"]["synced"] >= 0
    assert schedules["refresh"]["daily_at"] == "02:00"


def test_sustained_load_loses_and_doubles_nothing(cli: Cli, tmp_path: Path) -> None:
    """2,000 orders paced at 200/s: every one lands in OLTP and the warehouse exactly once."""
    orders = [{"customer_id": 1 + i % CUSTOMERS, "type": "cheese", "qty": 1, "retail_price": 10,
               "order_id": f"load-{i}"} for i in range(2000)]
    path = tmp_path / "load.json"
    path.write_text(json.dumps(orders))
    started = time.monotonic()
    assert cli.json("send", str(path), "--rate", "200")["accepted"] == 2000
    wait_for(lambda: cli.sql("warehouse", "SELECT count(*) FROM orders_fact WHERE order_id LIKE 'load-%%'")[0][0]
             == 2000, timeout=30, what="2,000 orders in the warehouse")
    elapsed = time.monotonic() - started
    print(f"\n2000 orders at 200/s offered: accepted to warehouse in {elapsed:.1f} s")
    assert cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id LIKE 'load-%%'") == [(2000,)]
    assert cli.sql("warehouse", "SELECT count(DISTINCT order_id), count(*) FROM orders_fact "
                                "WHERE order_id LIKE 'load-%%'") == [(2000, 2000)]


def test_destroy_stops_everything_and_removes_state(cli: Cli) -> None:
    """destroy --yes stops the runtime and the server and deletes every file it made."""
    state = cli.state
    pg_root = Path(state.pg_root)
    assert cli.json("destroy", "--yes")["destroyed"] is True
    assert not pid_is_runtime(state.runtime_pid)
    assert not pg_root.exists()
    assert not (cli.home / "local.json").exists()
    assert "Nothing to destroy" in cli("destroy", "--yes").stdout
    assert "nothing is deployed" in cli("status", code=1).output

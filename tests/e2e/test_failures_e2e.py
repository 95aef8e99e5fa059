"""The failure side of the local target through the CLI: an OLTP outage ridden out, dead letters and
rejected orders listed, redriven, exported and re-sent, and `status` naming every problem."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.queue import PgQueue
from tests.support.local_cli import Cli, local_home, post, wait_for
from txpipe_cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-failures") as cli:
        cli.json("seed", "--generate", "50")
        yield cli


def admin_sql(cli: Cli, statement: str) -> None:
    """A statement on the maintenance database as the server's superuser (the test plays the DBA)."""
    state = cli.state
    conn = connect_postgres(Endpoint("127.0.0.1", state.pg_port, "postgres", f"file:{state.secret_file}"),
                            autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def order(n: int, **extra: Any) -> dict[str, Any]:
    return {"customer_id": 1 + n % 50, "type": "cheese", "qty": 1, "retail_price": 10, **extra}


def test_an_oltp_outage_loses_and_dead_letters_nothing(cli: Cli) -> None:
    """OLTP refuses connections for 8 s while orders arrive: all are accepted, status says OLTP is
    unreachable, and once it is back every order is stored once with no dead letter."""
    admin_sql(cli, "ALTER DATABASE txpipe_oltp WITH ALLOW_CONNECTIONS false")
    admin_sql(cli, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'txpipe_oltp'")
    try:
        for batch in range(4):
            body = json.dumps([order(i, order_id=f"outage-{batch}-{i}") for i in range(25)]).encode()
            assert post(cli.state, body)[0] == 202
            time.sleep(1.0)
        down = cli.json("status", code=1)
        assert "oltp" in down["pipeline"]["errors"]
        assert any(p.startswith("oltp unreachable") for p in down["problems"])
        time.sleep(4.0)
    finally:
        admin_sql(cli, "ALTER DATABASE txpipe_oltp WITH ALLOW_CONNECTIONS true")
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id LIKE 'outage-%%'")[0][0] == 100,
             timeout=60, what="the 100 orders accepted during the outage")
    assert cli.json("status")["pipeline"]["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0}
    assert cli.json("sync-now")["pending"] == 0
    assert cli.sql("warehouse", "SELECT count(*), count(DISTINCT order_id) FROM orders_fact "
                                "WHERE order_id LIKE 'outage-%%'") == [(100, 100)]


def test_dead_letters_are_listed_shown_redriven_and_purged(cli: Cli) -> None:
    """A message that is not an order: listed with its reason and age, shown whole, redriven (it comes
    back, still refused), then purged; status exits 1 while it waits."""
    queue = PgQueue.from_endpoint(cli.state.endpoint("queue"), "orders")
    try:
        queue.send_batch(['{"not": "an order"}'])
        wait_for(lambda: queue.stats().dead_letters == 1, what="the dead letter")
    finally:
        queue.close()
    listed = cli.json("dlq", "list")
    assert listed["count"] == 1 and list(listed["reasons"].values()) == [1]
    [message] = listed["messages"]
    assert message["reason"].startswith("not a valid order message") and message["age_seconds"] >= 0
    assert "1 dead letter waits" in cli.json("status", code=1)["problems"][-1]
    shown = cli.json("dlq", "show", message["message_id"])
    assert shown["body"] == '{"not": "an order"}'
    assert "no dead letter" in cli("dlq", "show", "999999999", code=1).output

    assert cli.json("dlq", "redrive") == {"moved": 1, "status": "COMPLETED"}
    wait_for(lambda: cli.json("dlq", "list")["count"] == 1, what="the refused message back in the DLQ")
    assert cli.json("dlq", "purge", "--yes") == {"purged": 1}
    assert cli.json("dlq", "list")["count"] == 0
    assert cli.json("status")["problems"] == []


def test_rejected_orders_are_listed_exported_and_resent(cli: Cli, tmp_path: Path) -> None:
    """An unknown customer's order is rejected with its reason; once the customer is loaded, the
    exported file re-sent stores it."""
    assert post(cli.state, json.dumps(order(1, customer_id=777_777, order_id="rej-1")).encode())[0] == 202
    wait_for(lambda: cli.json("rejected", "list")["count"] == 1, what="the rejected order")
    listed = cli.json("rejected", "list")
    assert listed["reasons"] == {"unknown customer_id": 1}
    assert listed["rows"][0]["order"] == {**order(1, customer_id=777_777, order_id="rej-1")}

    exported = tmp_path / "rejected.ndjson"
    assert cli.json("rejected", "export", str(exported))["written"] == 1
    assert [json.loads(line) for line in exported.read_text().splitlines()] == [listed["rows"][0]["order"]]
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,state\n777777,WY\n")
    cli.json("seed", "--customers", str(customers))
    assert cli.json("send", str(exported))["accepted"] == 1
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id = 'rej-1'")[0][0] == 1,
             what="the re-sent order")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_no_secret_in_logs_environments_command_lines_or_output(cli: Cli) -> None:
    """After the outages, dead letters and refusals above, no generated password or the API key appears in
    any log, in the environment or command line of any process txpipe started, or in command output."""
    from txpipe_cli.local.pg import PgServer, find_bindir

    state = cli.state
    secrets = [json.loads(path.read_text()) for path in state.secret_dir.glob("*.json")]
    values = [s.get("password") or s.get("api_key") for s in secrets]
    assert len(values) >= 8 and all(values)  # superuser, six users, the API key

    server = PgServer(Path(state.pg_root), state.pg_port, state.pg_user, find_bindir())
    postmaster = server.postmaster_pid()
    assert postmaster
    processes = [state.runtime_pid, postmaster, *_children(postmaster)]
    exposed: dict[str, bytes] = {}
    for pid in processes:
        for part in ("environ", "cmdline"):
            try:
                exposed[f"/proc/{pid}/{part}"] = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                pass
    for path in [*state.log_dir.glob("*"), server.log_file, state.path]:
        exposed[str(path)] = path.read_bytes()
    for command in (["status"], ["deploy"], ["dlq", "list"], ["rejected", "list"], ["endpoint"]):
        exposed[" ".join(command)] = runner.invoke(app, [*command, "--json"],
                                                   env={"TXPIPE_HOME": str(cli.home)}).output.encode()
    assert len(processes) > 3 and exposed[str(state.log_dir / "runtime.log")]
    leaks = [(where, n) for where, content in exposed.items() for n, value in enumerate(values)
             if value.encode() in content]
    assert leaks == []
    mode = {path.name: path.stat().st_mode & 0o777 for path in [*state.secret_dir.iterdir(), *state.log_dir.iterdir()]}
    assert set(mode.values()) == {0o600}, mode


def test_a_customer_load_is_all_or_nothing_and_never_moves_a_customer_silently(cli: Cli, tmp_path: Path) -> None:
    """A CSV whose bad row comes after a full batch loads nothing; moving a customer needs --replace."""
    before = cli.sql("oltp", "SELECT count(*), sum(customer_id) FROM customers")
    rows = [f"{900_000 + i},TX" for i in range(12_000)] + ["900005,CA"]  # a duplicate two batches in
    bad = tmp_path / "dupe.csv"
    bad.write_text("customer_id,state\n" + "\n".join(rows) + "\n")
    assert "customer_id 900005 appears twice" in cli("seed", "--customers", str(bad), code=1).output
    assert cli.sql("oltp", "SELECT count(*), sum(customer_id) FROM customers") == before

    state = cli.sql("oltp", "SELECT state FROM customers WHERE customer_id = 1")[0][0]
    other = "WY" if state != "WY" else "TX"
    move = tmp_path / "move.csv"
    move.write_text(f"customer_id,state\n1,{other.lower()}\n")
    assert "would move to another state" in cli("seed", "--customers", str(move), code=1).output
    assert cli.sql("oltp", "SELECT state FROM customers WHERE customer_id = 1") == [(state,)]
    assert cli.json("seed", "--customers", str(move), "--replace") == {"customers": 1, "new": 0, "updated": 1,
                                                                       "moved": 1}
    assert cli.sql("oltp", "SELECT state FROM customers WHERE customer_id = 1") == [(other,)]

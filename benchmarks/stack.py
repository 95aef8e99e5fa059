"""The local stack every benchmark runs on: one `txpipe deploy` under a temporary TXPIPE_HOME.

txpipe itself is driven through its CLI and its local runtime (deploy, seed, send, the sync
function through the runtime's Invoke API, sla-report). The benchmark reaches the databases
directly only to lay down data, to reset between benchmarks, to run the baselines and to
verify what arrived. Credentials come from the deployment's 0600 secret file and go to other
tools (dlt, Sling) through environment variables only, never through argv or a log line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg2 import sql

from lambdas.core.db import connect_postgres, read_secret
from lambdas.core.schema import order_columns_ddl
from txpipe_cli.local.state import LocalState

REPO = Path(__file__).resolve().parent.parent
# Schemas the baselines write to in the warehouse database; dropped on reset.
BASELINE_SCHEMAS = ("bench_seed", "bench_copy", "bench_copy_binary", "bench_sling", "bench_sling_first", "bench_dlt",
                    "bench_dlt_staging")
# The target every table-writing baseline gets: orders_fact's columns and primary key, without loaded_at
# (txpipe's own stamp), built from the warehouse schema itself: the same physical shape txpipe's sync
# writes into, whatever that becomes. `{}` is the table, filled in with psycopg2.sql.
TARGET_DDL = "CREATE TABLE {} " + order_columns_ddl(loaded_at=False)
# What every sync contender reads: the pending orders with their customer's state (txpipe's claim joins
# the same way). A view in the OLTP database, so dlt and Sling read exactly what txpipe reads.
SOURCE_VIEW = "bench_orders_src"
SOURCE_VIEW_SQL = """CREATE OR REPLACE VIEW bench_orders_src AS
SELECT o.order_id, o.customer_id, c.state, o.pizza_type, o.qty, o.retail_price, o.accepted_at, o.stored_at
FROM orders o JOIN customers c ON c.customer_id = o.customer_id"""


def txpipe_executable() -> list[str]:
    """The `txpipe` console script installed beside this Python (pip install -e .)."""
    script = Path(sys.executable).with_name("txpipe")
    if script.exists():
        return [str(script)]
    found = shutil.which("txpipe")
    if found:
        return [found]
    return [sys.executable, "-c", "from txpipe_cli.app import main; main()"]


@dataclass
class Stack:
    home: Path
    env: dict[str, str] = field(repr=False)
    log: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextmanager
    def deployed(cls, *, customers: int, keep: bool = False) -> Iterator[Stack]:
        """Deploys under a fresh TXPIPE_HOME in /var/tmp (the server user must reach it), seeds customers,
        and destroys everything on the way out."""
        home = Path(tempfile.mkdtemp(prefix="txpipe-bench-", dir="/var/tmp"))
        os.chmod(home, 0o755)  # noqa: S103 - the unprivileged server user must reach its data under it
        env = {**os.environ, "TXPIPE_HOME": str(home)}
        env.pop("TXPIPE_API_URL", None)
        # Child processes (`python -m benchmarks.seed`, `benchmarks.dlt_run`) import this package from the repo.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        stack = cls(home, env)
        try:
            # No scheduled sync may fire while a benchmark measures one: the schedule is 12 h until
            # the freshness benchmark redeploys with its own.
            stack.deploy(sync_every="12h", sla=86400)
            stack.txpipe_json("seed", "--generate", str(customers))
            yield stack
        finally:
            if not keep:
                stack.txpipe("destroy", "--yes", check=False)
                shutil.rmtree(home, ignore_errors=True)

    def deploy(self, *, sync_every: str, sla: float) -> dict[str, Any]:
        # The daily view refresh half a day away (UTC): it must not run beside a measured refresh or read.
        refresh_at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
        return self.txpipe_json("deploy", "--sync-every", sync_every, "--sla", str(sla), "--refresh-at", refresh_at,
                                "--timezone", "UTC", timeout=120)

    # ------------------------------------------------------------------ the CLI

    def txpipe(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*txpipe_executable(), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        self.log.append(f"txpipe {' '.join(args)} -> {proc.returncode}")
        if check and proc.returncode != 0:
            raise RuntimeError(f"txpipe {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc

    def txpipe_json(self, *args: str, timeout: float = 600, ok_codes: tuple[int, ...] = (0,)) -> Any:
        proc = self.txpipe(*args, "--json", timeout=timeout, check=False)
        if proc.returncode not in ok_codes:
            raise RuntimeError(f"txpipe {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return json.loads(proc.stdout)

    # ------------------------------------------------------------------ state, connections

    @property
    def state(self) -> LocalState:
        state = LocalState.load(self.home)
        if state is None:
            raise RuntimeError(f"nothing deployed under {self.home}")
        return state

    def connect(self, name: str, *, autocommit: bool = True) -> Any:
        return connect_postgres(self.state.endpoint(name), autocommit=autocommit, application_name="txpipe-bench")

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        """Calls a function through the runtime's Lambda Invoke API, as the schedules and the CLI do."""
        from txpipe_cli.local.target import LocalTarget

        return LocalTarget(self.home).invoke(function, payload, timeout=timeout)

    def runtime_pid(self) -> int:
        return int(self.state.runtime_pid)

    def url_env(self, prefix: str) -> dict[str, str]:
        """postgresql:// URLs of the OLTP and warehouse databases, for tools that take one, as environment
        variables <prefix>OLTP and <prefix>WAREHOUSE (for a child process's env only)."""
        state = self.state
        secret = read_secret(f"file:{state.secret_file}")
        user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
        out = {}
        for name in ("oltp", "warehouse"):
            endpoint = state.endpoint(name)
            out[f"{prefix}{name.upper()}"] = (f"postgresql://{user}:{password}@{endpoint.host}:{endpoint.port}/"
                                             f"{endpoint.dbname}?sslmode=disable")
        return out

    # ------------------------------------------------------------------ resetting between benchmarks

    def execute(self, name: str, *statements: Any) -> None:
        """Runs statements (text or psycopg2.sql) on one autocommit connection to a database."""
        conn = self.connect(name)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def reset(self) -> None:
        """Empties what the pipeline and the baselines write (customers and reference data stay)."""
        self.execute("oltp", "TRUNCATE outbox, orders, rejected_orders")
        # TRUNCATE leaves the fact table as a fresh deploy has it (no statistics), unlike DELETE.
        self.execute("warehouse", "TRUNCATE orders_fact, sync_runs")
        self.drop_baseline_targets()
        self.execute("queue", "TRUNCATE queue_messages")

    def drop_baseline_targets(self) -> None:
        self.execute("warehouse", *(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                                    for schema in BASELINE_SCHEMAS))

    def create_target(self, schema: str, table: str = "orders_fact") -> None:
        """A baseline's target table in the warehouse: orders_fact's shape and primary key."""
        self.execute("warehouse", sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
                     sql.SQL(TARGET_DDL).format(sql.Identifier(schema, table)))

    def create_source_view(self) -> None:
        self.execute("oltp", SOURCE_VIEW_SQL)

    def vacuum_analyze(self, name: str, tables: tuple[str, ...]) -> None:
        """Settles freshly loaded tables (hint bits, visibility map, statistics) so every contender starts
        from the same state, not from whatever autovacuum happens to be doing."""
        self.execute(name, *(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)) for table in tables))

    def wait_for(self, name: str, query: str, params: tuple[Any, ...], want: int, *, timeout: float,
                 interval: float = 0.02) -> float:
        """Polls a count query until it reaches `want`; returns the monotonic time it did."""
        conn = self.connect(name)
        deadline = time.monotonic() + timeout
        try:
            with conn.cursor() as cur:
                while True:
                    cur.execute(query, params)
                    got = cur.fetchone()[0]
                    if got >= want:
                        return time.monotonic()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{got} of {want} rows after {timeout:.0f} s: {query}")
                    time.sleep(interval)
        finally:
            conn.close()

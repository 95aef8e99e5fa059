"""redshift: the Redshift warehouse's two loads on the same backlog, COPY from S3 against multi-row INSERT.

There is no Redshift or AWS account here, so both run against emulation, side by side:
redshift-connector talks to the stack's PostgreSQL through the loopback protocol shim
(tests/support/redshift_shim.py), which carries out `COPY ... FROM 's3://...' IAM_ROLE ... CSV GZIP` by
reading moto's S3 (a ThreadedMotoServer on 127.0.0.1: real HTTP, as from a Lambda) and feeding
PostgreSQL's COPY. Both contenders are txpipe's own run_sync with a RedshiftWarehouse, in this
process, from the same OLTP backlog (put back in the outbox before each) into a warehouse database
of their own that an md5 role owns (redshift-connector cannot do SCRAM):

- copy: with an S3BatchFiles (what the stack configures): gzipped CSV to S3, COPY, merge, delete;
- insert: without one (what runs when no bucket is set): parameterized multi-row INSERTs.

Each is checked by row count and checksum against the source, and the bucket must be empty after
the COPY run. The ratio says what COPY buys even where INSERT is cheap (PostgreSQL on loopback);
on Redshift, where AWS calls INSERT loads "prohibitively slow", the gap can only be wider.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2 import sql

from benchmarks.data import SYNC_COLUMNS, Check, Checksum, table_checksum
from benchmarks.stack import Stack
from benchmarks.sync import lay_down_backlog
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3BatchFiles, connect_redshift

ROLE = "txpipe_bench_rs"
DATABASE = "txpipe_bench_redshift"
BUCKET = "txpipe-bench-stage"
COPY_ROLE = "arn:aws:iam::123456789012:role/txpipe-bench-CopyRole"
BATCH_ROWS = 50_000  # the sync function's default (TXPIPE_SYNC_BATCH_ROWS)


@dataclass
class RedshiftPath:
    """The emulated Redshift: its database behind the shim, and moto's S3 with the staging bucket."""

    endpoint: Endpoint  # through the shim, as the md5 role
    direct: Endpoint  # the server's own port, as the superuser (resets and checks)
    shim: Any
    s3: Any

    def reset(self) -> None:
        conn = connect_postgres(self.direct, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("TRUNCATE orders_fact, sync_runs")
        finally:
            conn.close()

    def checksum(self) -> Checksum:
        conn = connect_postgres(self.direct, autocommit=True)
        try:
            return table_checksum(conn, sql.Identifier("orders_fact"), SYNC_COLUMNS)
        finally:
            conn.close()

    def staged(self) -> int:
        return int(self.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0))


@contextmanager
def redshift_path(stack: Stack, workdir: Path) -> Iterator[RedshiftPath]:
    """An md5 role owning a migrated warehouse database (a pg_hba line for it alone), the shim in front, a moto
    S3 server with the bucket; all of it undone on the way out, pg_hba.conf restored."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    from tests.support.redshift_shim import RedshiftShim
    from tests.support.warehouse import migrate_warehouse

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO
    state = stack.state
    hba = Path(state.pg_root) / "data" / "pg_hba.conf"
    original = hba.read_text()
    password = os.urandom(16).hex()
    secret = workdir / "redshift-secret.json"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"username": ROLE, "password": password}, handle)
    admin = stack.connect("warehouse")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    shim = None
    try:
        with admin.cursor() as cur:
            cur.execute("SET password_encryption = 'md5'")
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(ROLE)), (password,))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
        hba.write_text(f"host {DATABASE} {ROLE} 127.0.0.1/32 md5\n" + original)  # first match wins: this role only
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        moto.start()
        host, port = moto.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",  # noqa: S106 - moto's
                          config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket=BUCKET)
        shim = RedshiftShim(state.pg_port, s3=s3, copy_roles=frozenset({COPY_ROLE})).start()
        path = RedshiftPath(Endpoint("127.0.0.1", shim.port, DATABASE, f"file:{secret}"),
                            Endpoint("127.0.0.1", state.pg_port, DATABASE, f"file:{state.secret_file}"), shim, s3)
        conn = _connect(path)
        try:
            migrate_warehouse(conn, "redshift")  # as ops' migrate does it (no IAM users to grant behind the shim)
        finally:
            conn.close()
        yield path
    finally:
        if shim is not None:
            shim.stop()
        moto.stop()
        hba.write_text(original)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        admin.close()


def _connect(path: RedshiftPath) -> Any:
    """redshift-connector through the shim; the server may take a moment to re-read pg_hba.conf."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return connect_redshift(path.endpoint, ssl=False, application_name="txpipe-bench")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Phases:
    """Where a sync's time went, from the outside: warehouse statements by kind, S3 calls, commits."""

    KINDS = (("COPY ", "copy"), ("INSERT INTO orders_batch", "insert"), ("INSERT INTO orders_fact", "merge"))

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, phase: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def statement(self, sql_text: str) -> str:
        return next((phase for prefix, phase in self.KINDS if sql_text.startswith(prefix)), "other statements")

    def report(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in sorted(self.seconds.items())}


class _TimedCursor:
    def __init__(self, cursor: Any, phases: Phases) -> None:
        self._cursor, self._phases = cursor, phases

    def __enter__(self) -> _TimedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()

    def execute(self, sql_text: str, params: Any = None) -> None:
        self._phases.timed(self._phases.statement(sql_text), self._cursor.execute, sql_text, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _TimedConnection:
    """The warehouse connection run_sync gets, timing each statement and commit (nothing else changes)."""

    def __init__(self, conn: Any, phases: Phases) -> None:
        self._conn, self._phases = conn, phases

    def cursor(self) -> _TimedCursor:
        return _TimedCursor(self._conn.cursor(), self._phases)

    def commit(self) -> None:
        self._phases.timed("commit", self._conn.commit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _TimedS3:
    def __init__(self, client: Any, phases: Phases) -> None:
        self._client, self._phases = client, phases

    def put_object(self, **kwargs: Any) -> Any:
        return self._phases.timed("s3 put", self._client.put_object, **kwargs)

    def delete_object(self, **kwargs: Any) -> Any:
        return self._phases.timed("s3 delete", self._client.delete_object, **kwargs)


class _TimedRedshift(RedshiftWarehouse):
    """The real backend; only its load is timed as a whole (CSV encoding = load - S3 put - COPY)."""

    def __init__(self, phases: Phases, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._phases = phases

    def load_batch(self, cur: Any, rows: Any) -> Any:
        return self._phases.timed("load_batch", super().load_batch, cur, rows)


def _requeue(stack: Stack) -> None:
    """Every stored order pending again, the outbox settled, as load_backlog leaves it."""
    stack.execute("oltp", "TRUNCATE outbox",
                  "INSERT INTO outbox (order_id, accepted_at) SELECT order_id, accepted_at FROM orders")
    stack.vacuum_analyze("oltp", ("outbox",))


def _sync(stack: Stack, path: RedshiftPath, backend: RedshiftWarehouse, phases: Phases) -> dict[str, Any]:
    oltp, warehouse = stack.connect("oltp", autocommit=False), _connect(path)
    try:
        started = time.perf_counter()
        result = run_sync(oltp, _TimedConnection(warehouse, phases), backend=backend, batch_rows=BATCH_ROWS,
                          max_seconds=3600)
        seconds = time.perf_counter() - started
    finally:
        oltp.close()
        warehouse.close()
    if result.pending:
        raise RuntimeError(f"{result.pending} orders still pending after the {backend.kind} sync")
    return {"rows": result.synced, "seconds": round(seconds, 3), "per_s": round(result.synced / max(seconds, 1e-9), 1),
            "batches": result.batches, "phases_s": phases.report()}


def run(stack: Stack, *, rows: int, customers: int, workdir: Path) -> tuple[dict[str, Any], list[Check]]:
    """Lays down a backlog of `rows`, moves it with each load in turn; returns the report and the checks."""
    source = lay_down_backlog(stack, rows, customers)
    out: dict[str, Any] = {"rows": rows, "batch_rows": BATCH_ROWS}
    checks: list[Check] = []
    with redshift_path(stack, workdir) as path:
        insert_phases, copy_phases = Phases(), Phases()
        batch_files = S3BatchFiles(BUCKET, "stage/", COPY_ROLE)
        staged = _TimedRedshift(copy_phases, batch_files=batch_files, s3=_TimedS3(path.s3, copy_phases))
        contenders = (("insert", insert_phases, _TimedRedshift(insert_phases)), ("copy", copy_phases, staged))
        for name, phases, backend in contenders:
            _requeue(stack)
            path.reset()
            copies = len(path.shim.copies)
            out[name] = _sync(stack, path, backend, phases)
            out[name]["copies"] = len(path.shim.copies) - copies  # COPY statements the shim carried out
            checks.append(Check(f"redshift/{name}", source, path.checksum()))
        out["copy"]["objects_left"] = path.staged()
    if out["copy"]["objects_left"] or not out["copy"]["copies"] or out["insert"]["copies"]:
        raise RuntimeError(f"the loads did not go as designed: {out}")
    out["insert_per_s"], out["copy_per_s"] = out["insert"]["per_s"], out["copy"]["per_s"]
    out["ratio_copy_vs_insert"] = round(out["copy_per_s"] / out["insert_per_s"], 2)
    stack.reset()
    return out, checks

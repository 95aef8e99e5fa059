"""The EL baselines of the sync benchmark: dlt, Sling and raw COPY, on the same source and warehouse.

Each reads the `bench_orders_src` view in the OLTP database (pending orders joined with the
customer's state, as txpipe's claim does) and writes into its own schema of the warehouse
database. Connection URLs go to dlt and Sling through their child process's environment only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from psycopg2 import sql

from benchmarks.stack import SOURCE_VIEW, Stack
from lambdas.core.schema import BATCH_COLUMNS

COLUMNS = BATCH_COLUMNS  # orders_fact's columns without loaded_at, as the warehouse schema lists them
SLING_VERSION = "1.4.11"


# --------------------------------------------------------------------------- raw COPY


def raw_copy(stack: Stack, target: tuple[str, str], *, binary: bool = False) -> float:
    """`COPY (SELECT ...) TO STDOUT` on the OLTP side piped into `COPY ... FROM STDIN` on the warehouse side,
    the two running at once on their own connections: the physical limit for moving these rows here."""
    options = sql.SQL(" WITH (FORMAT binary)" if binary else "")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    copy_out = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT{}").format(columns, sql.Identifier(SOURCE_VIEW), options)
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN{}").format(sql.Identifier(*target), columns, options)
    oltp, warehouse = stack.connect("oltp"), stack.connect("warehouse", autocommit=False)
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 16) as sink, oltp.cursor() as cur:
                cur.copy_expert(copy_out, sink, size=1 << 16)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    try:
        started = time.perf_counter()
        producer = threading.Thread(target=produce, name="copy-out")
        producer.start()
        with os.fdopen(read_fd, "rb", buffering=1 << 16) as source, warehouse.cursor() as cur:
            cur.copy_expert(copy_in, source, size=1 << 16)
        warehouse.commit()
        producer.join()
        seconds = time.perf_counter() - started
    finally:
        oltp.close()
        warehouse.close()
    if errors:
        raise errors[0]
    return seconds


# --------------------------------------------------------------------------- Sling


def sling_binary() -> str:
    """SLING_BINARY, else the binary inside the sling-linux-amd64 wheel (newer `sling` wheels download it
    at run time, which a machine without internet cannot do)."""
    path = os.environ.get("SLING_BINARY")
    if not path:
        import sling_linux_amd64  # the platform wheel: pip install sling-linux-amd64==1.4.11

        path = str(Path(sling_linux_amd64.__file__).parent / "bin" / "sling-linux-amd64")
    if not Path(path).exists():
        raise RuntimeError(f"no Sling binary at {path}: pip install sling=={SLING_VERSION} "
                           f"sling-linux-amd64=={SLING_VERSION}, or set SLING_BINARY")
    return path


SLING_REPLICATION = """source: BENCH_OLTP
target: BENCH_WAREHOUSE
defaults:
  mode: incremental
  primary_key: [order_id]
streams:
  public.{view}:
    object: {schema}.{table}
"""


def sling(stack: Stack, target: tuple[str, str], workdir: Path) -> float:
    """One Sling replication: incremental, keyed on order_id (an upsert into the target; Sling creates the
    target if it does not exist). Wall time of the binary's run, its own start included."""
    config = workdir / f"sling-{target[0]}.yaml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(SLING_REPLICATION.format(view=SOURCE_VIEW, schema=target[0], table=target[1]))
    home = workdir / "sling-home"
    home.mkdir(mode=0o700, exist_ok=True)
    binary = sling_binary()
    env = {**stack.env, **stack.url_env("BENCH_"), "SLING_BINARY": binary, "SLING_HOME_DIR": str(home),
           "SLING_DISABLE_TELEMETRY": "true", "SLING_LOADED_AT_COLUMN": "false"}
    started = time.perf_counter()
    proc = subprocess.run([binary, "run", "-r", str(config)], env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=1800, check=False, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"sling failed ({proc.returncode}): {_scrub(stack, proc.stdout + proc.stderr)[-800:]}")
    return seconds


# --------------------------------------------------------------------------- dlt


def dlt(stack: Stack, dataset: str, workdir: Path) -> dict[str, Any]:
    """One dlt run in a child process (benchmarks.dlt_run); returns its JSON report."""
    urls = stack.url_env("BENCH_")
    pipelines = Path(tempfile.mkdtemp(prefix="dlt-", dir=workdir))
    env = {**stack.env, "SOURCES__SQL_DATABASE__CREDENTIALS": urls["BENCH_OLTP"],
           "DESTINATION__POSTGRES__CREDENTIALS": urls["BENCH_WAREHOUSE"], "DLT_DATA_DIR": str(pipelines / "data"),
           "RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}
    proc = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "benchmarks.dlt_run", "--table", SOURCE_VIEW, "--dataset", dataset,
         "--pipelines-dir", str(pipelines)],
        env=env, capture_output=True, text=True, timeout=3600, check=False, stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dlt failed ({proc.returncode}): {_scrub(stack, proc.stderr)[-800:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["has_failed_jobs"]:
        raise RuntimeError("dlt reported failed load jobs")
    return report


def _scrub(stack: Stack, text: str) -> str:
    """Removes the database password from a tool's output before it is shown anywhere."""
    from urllib.parse import quote

    from lambdas.core.db import read_secret

    password = read_secret(f"file:{stack.state.secret_file}")["password"]
    return text.replace(password, "***").replace(quote(password, safe=""), "***")

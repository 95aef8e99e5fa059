"""The Redshift warehouse with a staging bucket: each batch as gzipped CSV in S3, then COPY with an IAM role.

No account: S3 is moto's (mock_aws), and the shim in front of the session's PostgreSQL carries out
Redshift's `COPY ... FROM 's3://...' IAM_ROLE ... CSV GZIP` by reading the objects from that same moto
S3 (tests/support/redshift_shim.py), in the client's own transaction. Everything on the txpipe side is the real
code: RedshiftWarehouse with an S3BatchFiles, run_sync, and the sync function with the stage's variables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
import redshift_connector
from moto import mock_aws
from psycopg2 import sql

from benchmarks.data import SYNC_COLUMNS, table_checksum
from lambdas import sync
from lambdas.core import env
from lambdas.core.db import connect_postgres
from lambdas.core.schema import BATCH_TABLE_DDL
from lambdas.core.sync import run_sync
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3BatchFiles, batch_csv, copy_sql
from tests.integration.helpers import order, query, store_directly
from tests.support.redshift import FACT_COLUMNS, FailingCommit, Redshift, fact_rows, outbox_ids, tricky_orders
from txpipe_cli.local.events import LambdaContext, scheduled_event

BUCKET = "txpipe-test-stage"
ROLE = "arn:aws:iam::123456789012:role/txpipe-test-CopyRole-1A2B3C"
STAGE = S3BatchFiles(BUCKET, "stage/", ROLE)


@pytest.fixture
def s3(redshift: Redshift) -> Iterator[Any]:
    """moto's S3 with the staging bucket, behind both the warehouse and the shim (the role associated)."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        redshift.shim.s3, redshift.shim.copy_roles = client, frozenset({ROLE})
        redshift.shim.copies.clear()
        try:
            yield client
        finally:
            redshift.shim.s3, redshift.shim.copy_roles = None, frozenset()


def staged_keys(s3: Any) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def sync_once(rs_dbs: Any, rs: Redshift, backend: RedshiftWarehouse, **kwargs: Any) -> Any:
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    try:
        return run_sync(oltp, warehouse, backend=backend, **kwargs)
    finally:
        oltp.close()
        warehouse.close()


def fact_checksum(endpoint: Any) -> Any:
    conn = connect_postgres(endpoint, autocommit=True)
    try:
        return table_checksum(conn, sql.Identifier("orders_fact"), SYNC_COLUMNS)
    finally:
        conn.close()


def requeue_all(rs_dbs: Any) -> None:
    """Puts every stored order back in the outbox (as if never synced), to move the same data again."""
    conn = rs_dbs.connect("oltp", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO outbox (order_id, accepted_at) SELECT order_id, accepted_at FROM orders")
    finally:
        conn.close()


def a_row(order_id: str) -> tuple[Any, ...]:
    stamp = datetime(2024, 5, 1, 12, tzinfo=UTC)
    return (order_id, 1, "TX", "cheese", 2, Decimal("12.50"), stamp, stamp)


class RecordingS3:
    """An S3 client that remembers what was put (key and bytes) before passing it on."""

    def __init__(self, client: Any) -> None:
        self._client, self.puts = client, []

    def put_object(self, **kwargs: Any) -> Any:
        self.puts.append((kwargs["Key"], kwargs["Body"]))
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_copy_path_loads_what_the_postgres_path_loads(rs_dbs, rs, s3):
    """The same tricky orders moved by PostgreSQL's COPY and by Redshift's COPY from S3: same rows, same checksum."""
    orders = tricky_orders()
    store_directly(rs_dbs, orders)
    oltp, warehouse = rs_dbs.connect("oltp"), rs_dbs.connect("warehouse")
    try:
        assert run_sync(oltp, warehouse).synced == len(orders)  # the local PostgreSQL warehouse
    finally:
        oltp.close()
        warehouse.close()
    requeue_all(rs_dbs)

    result = sync_once(rs_dbs, rs, RedshiftWarehouse(batch_files=STAGE, s3=s3))
    assert (result.synced, result.inserted, result.batches, result.staged_batches) == (len(orders), len(orders), 1, 1)
    [copied] = rs.shim.copies  # it went in by COPY, from the bucket, as the role
    assert (copied.role, copied.rows) == (ROLE, len(orders))
    assert copied.keys[0].startswith("stage/orders-") and copied.uri == f"s3://{BUCKET}/{copied.keys[0]}"
    postgres = fact_checksum(rs_dbs.endpoints["warehouse"])
    assert postgres.rows == len(orders) and fact_checksum(rs.direct) == postgres
    local = query(rs_dbs, "warehouse", f"SELECT {FACT_COLUMNS} FROM orders_fact ORDER BY order_id")  # noqa: S608
    # and value by value: ids with commas, quotes, backslashes, \\N, NULL, a tab, unicode; prices; instants
    assert [r[:8] for r in fact_rows(rs)] == [r[:8] for r in local]
    assert staged_keys(s3) == []  # deleted once committed


class CommitWatcher:
    """A warehouse connection that notes which staged objects exist at each commit."""

    def __init__(self, conn: Any, s3: Any) -> None:
        self._conn, self._s3, self.seen = conn, s3, []

    def commit(self) -> None:
        self.seen.append(staged_keys(self._s3))
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_the_object_is_deleted_after_the_warehouse_commit(rs_dbs, rs, s3):
    """Each batch's object exists when its warehouse transaction commits and is gone right after; none is left."""
    store_directly(rs_dbs, [order(f"w-{i:04d}", 1 + i % 4) for i in range(50)])
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    watcher = CommitWatcher(warehouse, s3)
    try:
        result = run_sync(oltp, watcher, backend=RedshiftWarehouse(batch_files=STAGE, s3=s3), batch_rows=20)
    finally:
        oltp.close()
        warehouse.close()
    assert (result.synced, result.batches) == (50, 3)
    keys = [copied.keys[0] for copied in rs.shim.copies]
    assert len(set(keys)) == 3 and [c.rows for c in rs.shim.copies] == [20, 20, 10]
    # Per batch: the stage-clear commit (nothing staged yet), then the batch's commit (its object there).
    assert watcher.seen == [[], [keys[0]], [], [keys[1]], [], [keys[2]], []]
    assert staged_keys(s3) == [] and len(fact_rows(rs)) == 50


def test_a_crash_between_copy_and_commit_leaves_nothing_and_the_rerun_overwrites_the_key(rs_dbs, rs, s3):
    """Died after COPY and merge, before the commit: no row in the warehouse, the object left under its key;
    the re-run writes that same key again, loads each order once, and deletes it."""
    orders = [order(f"c-{i:03d}", 1 + i % 4, "veggie", 1 + i % 5, "9.99") for i in range(40)]
    store_directly(rs_dbs, orders)
    recording = RecordingS3(s3)
    backend = RedshiftWarehouse(batch_files=STAGE, s3=recording)
    oltp, warehouse = rs_dbs.connect("oltp"), rs.connect()
    with pytest.raises(ConnectionAbortedError):
        run_sync(oltp, FailingCommit(warehouse, at=2), backend=backend)
    oltp.close()
    warehouse.close()
    [crashed] = rs.shim.copies
    assert crashed.rows == 40  # COPY did run
    assert fact_rows(rs) == [] and len(outbox_ids(rs_dbs)) == 40
    assert staged_keys(s3) == list(crashed.keys)  # the object outlived the crash

    result = sync_once(rs_dbs, rs, backend)
    assert (result.synced, result.inserted, result.already_present) == (40, 40, 0)
    [(first_key, first_body), (again_key, again_body)] = recording.puts
    assert again_key == first_key == crashed.keys[0]  # the same key, overwritten rather than a second object
    assert again_body == first_body  # with the same bytes
    assert rs.shim.copies[-1].keys == crashed.keys
    assert staged_keys(s3) == []
    assert rs.query("SELECT count(*), count(DISTINCT order_id) FROM orders_fact") == [(40, 40)]
    assert outbox_ids(rs_dbs) == []


def test_a_failed_copy_leaves_no_object_and_nothing_synced(rs_dbs, rs, s3):
    """A role Redshift may not assume: COPY fails, the object is removed, the outbox and warehouse untouched."""
    store_directly(rs_dbs, [order(f"r-{i}", 1) for i in range(3)])
    stranger = S3BatchFiles(BUCKET, "stage/", "arn:aws:iam::123456789012:role/not-associated")
    with pytest.raises(redshift_connector.ProgrammingError, match="not authorized to assume IAM Role"):
        sync_once(rs_dbs, rs, RedshiftWarehouse(batch_files=stranger, s3=s3))
    assert staged_keys(s3) == [] and rs.shim.copies == []
    assert fact_rows(rs) == [] and len(outbox_ids(rs_dbs)) == 3


class NoDelete:
    """An S3 client whose DeleteObject is denied (a role without s3:DeleteObject)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def delete_object(self, **kwargs: Any) -> None:
        raise PermissionError("AccessDenied: s3:DeleteObject")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_failed_delete_is_logged_and_the_sync_still_succeeds(rs_dbs, rs, s3, caplog):
    """The batch is committed either way: a denied delete is a warning naming the object, not a failed sync."""
    store_directly(rs_dbs, [order(f"d-{i}", 2) for i in range(4)])
    caplog.set_level(logging.WARNING, logger="lambdas.core.warehouse.redshift")
    result = sync_once(rs_dbs, rs, RedshiftWarehouse(batch_files=STAGE, s3=NoDelete(s3)))
    assert (result.synced, result.inserted, result.pending) == (4, 4, 0)
    [left] = staged_keys(s3)
    assert f"s3://{BUCKET}/{left}" in caplog.text and "AccessDenied" in caplog.text


@pytest.mark.parametrize(("options", "refusal"), [
    ("CSV GZIP TIMEFORMAT 'auto'", "NULL AS None"),  # the default NULL AS '\\N'
    ("CSV GZIP TIMEFORMAT 'auto' NULL AS '\\0' MAXERROR 10", "option MAXERROR"),
    ("CSV GZIP TIMEFORMAT 'auto' NULL AS '\\0' REGION 'us-west-2'", "option REGION"),
    ("GZIP TIMEFORMAT 'auto' NULL AS '\\0'", "only CSV"),
    ("CSV GZIP TIMEFORMAT 'epochsecs' NULL AS '\\0'", "TIMEFORMAT"),
    ("CSV QUOTE AS '%' GZIP TIMEFORMAT 'auto' NULL AS '\\0'", "option QUOTE"),
])
def test_the_shim_refuses_what_it_does_not_carry_out(rs, s3, options, refusal):
    """A COPY option the shim does not emulate is an error from the server, never silently ignored."""
    key = STAGE.key([("x",)])
    s3.put_object(Bucket=BUCKET, Key=key, Body=batch_csv([a_row("x")]))
    statement = copy_sql(f"s3://{BUCKET}/{key}", ROLE).replace("CSV GZIP TIMEFORMAT 'auto' NULL AS '\\0'", options)
    conn = rs.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(BATCH_TABLE_DDL)
            with pytest.raises(redshift_connector.ProgrammingError, match=f"redshift shim: .*{refusal}"):
                cur.execute(statement)
        conn.rollback()
    finally:
        conn.close()
    assert rs.shim.copies == []


def test_copy_reads_every_object_under_the_path_as_redshift_does(rs, s3):
    """FROM 's3://b/k' is a key prefix on Redshift: two objects under it load both; a path with none fails."""
    s3.put_object(Bucket=BUCKET, Key="stage/batch.csv.gz", Body=batch_csv([a_row("a"), a_row("b")]))
    s3.put_object(Bucket=BUCKET, Key="stage/batch.csv.gz.more", Body=batch_csv([a_row("c")]))
    conn = rs.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(BATCH_TABLE_DDL)
            cur.execute(copy_sql(f"s3://{BUCKET}/stage/batch.csv.gz", ROLE))
            cur.execute("SELECT order_id FROM orders_batch ORDER BY order_id")
            assert [r[0] for r in cur.fetchall()] == ["a", "b", "c"]
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(redshift_connector.ProgrammingError, match="does not exist"):
            cur.execute(copy_sql(f"s3://{BUCKET}/stage/nothing-here", ROLE))
        conn.rollback()
    finally:
        conn.close()
    [copied] = rs.shim.copies
    assert copied.keys == ("stage/batch.csv.gz", "stage/batch.csv.gz.more") and copied.rows == 3


def test_sync_handler_loads_through_s3_with_the_stage_variables(handler_env, rs_handler_env, s3, monkeypatch):
    """The sync function, kind redshift, with the stack's stage variables: one COPY per batch, nothing left."""
    for key, value in {"TXPIPE_WAREHOUSE_STAGE_BUCKET": BUCKET, "TXPIPE_WAREHOUSE_STAGE_PREFIX": "stage/",
                       "TXPIPE_WAREHOUSE_COPY_ROLE": ROLE, "TXPIPE_SYNC_BATCH_ROWS": "7"}.items():
        monkeypatch.setenv(key, value)
    env.reset_backends()  # its S3 client is built lazily, inside this test's moto
    store_directly(handler_env, [order(f"h-{i:03d}", 1 + i % 4) for i in range(30)])
    try:
        result = sync.handler(scheduled_event("sync"), LambdaContext("sync", 60))
        assert env.warehouse_backend().batch_files == STAGE
    finally:
        env.reset_backends()
    assert (result["synced"], result["pending"], result["batches"], result["inserted"]) == (30, 0, 5, 30)
    assert [c.rows for c in rs_handler_env.shim.copies] == [7, 7, 7, 7, 2]
    assert len(fact_rows(rs_handler_env)) == 30 and staged_keys(s3) == []

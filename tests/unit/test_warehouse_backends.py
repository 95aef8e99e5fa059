"""The warehouse backends without a database: what run_sync does in which order for each kind, the S3 stage's
keys and CSV, and how env picks a backend from the function's variables."""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from lambdas.core import env, schema
from lambdas.core.sync import run_sync
from lambdas.core.warehouse import Capabilities, Warehouse
from lambdas.core.warehouse.postgres import COPY_SQL, PostgresWarehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3BatchFiles, batch_csv, copy_sql
from tests.support.fakes import SelfCursor
from tests.support.scripted_aws import accept_objects, scripted_client

ROLE = "arn:aws:iam::123456789012:role/txpipe-dev-CopyRole-1A2B"
STAGE = S3BatchFiles("txpipe-dev-stage", "stage/", ROLE)
STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Journal:
    """One timeline of what the fake OLTP, warehouse and S3 were asked to do."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []


class FakeConnection(SelfCursor):
    """A DB-API-ish connection (and its cursor) that notes executes, COPYs and commits in the journal."""

    rowcount = 1

    def __init__(self, journal: Journal, name: str, claimed: list[Any] | None = None,
                 fail_on: str | None = None) -> None:
        self.journal, self.name, self.claimed, self.fail_on = journal, name, claimed, fail_on

    def execute(self, sql: str, params: Any = None) -> None:
        if self.fail_on and sql.startswith(self.fail_on):
            raise RuntimeError(f"refused: {self.fail_on}")
        self.journal.events.append((self.name, sql))

    def copy_expert(self, sql: str, data: Any, size: int = 0) -> None:
        self.journal.events.append((self.name, sql))

    def fetchall(self) -> list[Any]:
        rows, self.claimed = self.claimed or [], []
        return rows

    def fetchone(self) -> Any:
        return (0, 0, None)  # the backlog read: pending, being moved, oldest

    def commit(self) -> None:
        self.journal.events.append((self.name, "COMMIT"))

    def rollback(self) -> None:
        pass


def journaled_s3(journal: Journal) -> Any:
    """A real S3 client whose puts and deletes are answered at the network edge and written in the journal."""
    def answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        verb = {"PutObject": "put", "DeleteObject": "delete"}[operation]
        journal.events.append(("s3", f"{verb} s3://{params['Bucket']}/{params['Key']}"))
        return accept_objects(operation, params)

    return scripted_client("s3", answer)


def a_row(order_id: str, at: datetime = STAMP) -> tuple[Any, ...]:
    return (order_id, 7, "TX", "supreme", 3, Decimal("16.99"), at, at + timedelta(milliseconds=40))


def warehouse_timeline(backend: Warehouse, rows: list[Any]) -> list[str]:
    journal = Journal()
    oltp, warehouse = FakeConnection(journal, "oltp", claimed=rows), FakeConnection(journal, "warehouse")
    run_sync(oltp, warehouse, backend=backend, batch_rows=100, now=lambda: STAMP)
    return [what for who, what in journal.events if who != "oltp"]


def test_each_backend_declares_its_capabilities() -> None:
    """PostgreSQL takes COPY text, truncates inside the transaction and refreshes the views in one; Redshift
    takes typed rows, its TRUNCATE commits, each time a query wakes it (Serverless) it bills at least 60 s, and
    each REFRESH is a transaction of its own."""
    assert PostgresWarehouse.capabilities == Capabilities(copy_text=True, truncate_commits=False,
                                                          bills_by_wake=False, refresh_commits=False)
    assert RedshiftWarehouse.capabilities == Capabilities(copy_text=False, truncate_commits=True,
                                                          bills_by_wake=True, refresh_commits=True)
    assert (PostgresWarehouse.kind, RedshiftWarehouse.kind) == ("postgres", "redshift")


def test_postgres_batch_is_one_transaction_around_copy_from_stdin() -> None:
    """PostgreSQL: stage DDL, TRUNCATE, COPY FROM STDIN and the merge commit together; then the run record."""
    assert warehouse_timeline(PostgresWarehouse(), [a_row("o-1")]) == [
        schema.BATCH_TABLE_DDL, schema.BATCH_TABLE_CLEAR, COPY_SQL, schema.MERGE_SQL, "COMMIT", schema.RECORD_RUN_SQL,
        "COMMIT"]


def test_redshift_batch_stages_in_s3_copies_commits_then_deletes() -> None:
    """Redshift: the cleared stage commits on its own; the object is put, COPYed and merged in one transaction,
    and deleted only after that transaction commits."""
    rows = [a_row("o-1"), a_row("o-2")]
    uri = f"s3://{STAGE.bucket}/{STAGE.key(rows)}"
    journal = Journal()
    backend = RedshiftWarehouse(batch_files=STAGE, s3=journaled_s3(journal))
    oltp = FakeConnection(journal, "oltp", claimed=rows)
    run_sync(oltp, FakeConnection(journal, "warehouse"), backend=backend, batch_rows=100, now=lambda: STAMP)
    assert [what for who, what in journal.events if who != "oltp"] == [
        schema.BATCH_TABLE_DDL, schema.BATCH_TABLE_CLEAR, "COMMIT", f"put {uri}", copy_sql(uri, ROLE), schema.MERGE_SQL,
        "COMMIT", f"delete {uri}", schema.RECORD_RUN_SQL, "COMMIT"]


def test_redshift_without_a_stage_inserts_and_touches_no_s3() -> None:
    """No bucket: the batch goes in by one multi-row INSERT, inside the batch's transaction."""
    timeline = warehouse_timeline(RedshiftWarehouse(), [a_row("o-1"), a_row("o-2")])
    assert timeline[:3] == [schema.BATCH_TABLE_DDL, schema.BATCH_TABLE_CLEAR, "COMMIT"]
    assert timeline[3].startswith("INSERT INTO orders_batch (") and timeline[3].count("%s") == 16
    assert timeline[4:] == [schema.MERGE_SQL, "COMMIT", schema.RECORD_RUN_SQL, "COMMIT"]


def test_a_failed_copy_deletes_its_object_and_raises() -> None:
    """When COPY itself fails the object is removed at once (the warehouse never took it) and the error stands."""
    journal = Journal()
    backend = RedshiftWarehouse(batch_files=STAGE, s3=journaled_s3(journal))
    cursor = FakeConnection(journal, "warehouse", fail_on="COPY")
    with pytest.raises(RuntimeError, match="refused: COPY"):
        backend.load_batch(cursor, [a_row("o-1")])
    uri = f"s3://{STAGE.bucket}/{STAGE.key([a_row('o-1')])}"
    assert [what for _, what in journal.events] == [f"put {uri}", f"delete {uri}"]
    assert backend.load_batch(cursor, []) is None  # an empty batch stages nothing
    assert len(journal.events) == 2


def test_a_backend_without_an_endpoint_does_not_connect() -> None:
    for backend in (PostgresWarehouse(), RedshiftWarehouse()):
        with pytest.raises(RuntimeError, match="no endpoint"):
            backend.connect()


# -- the S3 stage ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("bucket", "prefix", "role", "variable"), [
    ("Bad_Bucket", "stage/", ROLE, "TXPIPE_WAREHOUSE_STAGE_BUCKET"),
    ("ab", "stage/", ROLE, "TXPIPE_WAREHOUSE_STAGE_BUCKET"),
    ("bucket' IAM_ROLE 'x", "stage/", ROLE, "TXPIPE_WAREHOUSE_STAGE_BUCKET"),
    ("txpipe-stage", "st'age/", ROLE, "TXPIPE_WAREHOUSE_STAGE_PREFIX"),
    ("txpipe-stage", "stage\\", ROLE, "TXPIPE_WAREHOUSE_STAGE_PREFIX"),
    ("txpipe-stage", "stage/", "arn:aws:iam::123:role/short-account", "TXPIPE_WAREHOUSE_COPY_ROLE"),
    ("txpipe-stage", "stage/", ROLE + "' CSV", "TXPIPE_WAREHOUSE_COPY_ROLE"),
])
def test_stage_settings_that_could_break_the_copy_statement_are_refused(bucket, prefix, role, variable) -> None:
    """Bucket, prefix and role go into COPY as literals (it takes no parameters): anything else is refused."""
    with pytest.raises(ValueError, match=variable):
        S3BatchFiles(bucket, prefix, role)


def test_the_key_is_the_batch_identity_at_a_fixed_length() -> None:
    """Same first and last order_id and count: same key. Any of them different: another key. Every key has
    the same length, so none is a prefix of another (Redshift's COPY loads every object under its path)."""
    rows = [a_row("a"), a_row("m"), a_row("z")]
    key = STAGE.key(rows)
    assert re.fullmatch(r"stage/orders-[0-9a-f]{40}\.csv\.gz", key)
    assert STAGE.key([a_row("a"), a_row("other middle"), a_row("z")]) == key
    others = {STAGE.key([a_row("b"), a_row("z")]), STAGE.key(rows[:2]), STAGE.key([*rows, a_row("z2")]),
              STAGE.key([a_row("a"), a_row("z")])}
    assert key not in others and len(others) == 4
    assert len({len(k) for k in (key, *others)}) == 1


def read_stage_csv(data: bytes) -> tuple[str, list[list[str]]]:
    text = gzip.decompress(data).decode()
    return text, list(csv.reader(io.StringIO(text)))


def test_stage_csv_quotes_every_field_and_writes_utc_microseconds() -> None:
    """Fields come back exact through a CSV reader; each is quoted; instants are UTC ISO 8601 with 6 digits."""
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    rows = [('a,"b"', 1, "TX", "meat lover", 2, Decimal("999999.99"), datetime(2024, 2, 29, 5, 45, tzinfo=kathmandu),
             datetime(2024, 2, 29, 0, 0, 0, 1, tzinfo=UTC)),
            ("\\N", 2, "CA", "veggie", 10, Decimal("1E+2"), STAMP, STAMP)]
    text, parsed = read_stage_csv(batch_csv(rows))
    assert parsed == [
        ['a,"b"', "1", "TX", "meat lover", "2", "999999.99", "2024-02-29T00:00:00.000000Z",
         "2024-02-29T00:00:00.000001Z"],
        ["\\N", "2", "CA", "veggie", "10", "100", "2024-05-01T12:00:00.000000Z", "2024-05-01T12:00:00.000000Z"]]
    assert text.endswith("\n") and "\r" not in text
    assert all(line.startswith('"') and line.endswith('"') and '",' in line for line in text.splitlines())
    assert batch_csv(rows) == batch_csv(rows)  # byte-identical, so a re-run writes the very same object


def test_stage_csv_writes_what_the_csv_module_writes() -> None:
    """The joined-up writer is csv.writer(quoting=QUOTE_ALL) byte for byte, on ids full of quotes, commas,
    backslashes, tabs, CR and LF; and a reader gets every id back."""
    rng = random.Random(9)
    pieces = ["a", ",", '"', "'", "\\", " ", "\t", "\n", "\r", "ü", "N", '""', "NULL"]
    rows = [("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))), i, "TX", 'say "hi"', i % 7,
             Decimal("1.50"), STAMP, STAMP) for i in range(500)]
    expected = io.StringIO()
    csv.writer(expected, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
        [[str(v) if not isinstance(v, datetime) else "2024-05-01T12:00:00.000000Z" for v in row] for row in rows])
    text, parsed = read_stage_csv(batch_csv(rows))
    assert text == expected.getvalue()
    assert [r[0] for r in parsed] == [row[0] for row in rows]
    assert gzip.decompress(batch_csv([])) == b""


@pytest.mark.parametrize(("row", "message"), [
    (("o-1", 1, "TX", "cheese", 1, Decimal("1.00"), None, STAMP), "no NULL"),
    (("o-1", 1, "TX", "cheese", 1, Decimal("1.00"), datetime(2024, 1, 1), STAMP), "time zone"),
    (("o-1", 1, "TX"), "8 values"),
])
def test_stage_csv_refuses_what_copy_would_misread(row, message) -> None:
    with pytest.raises(ValueError, match=message):
        batch_csv([row])


# -- env picks the backend ---------------------------------------------------------------------------------

ENDPOINT = {"TXPIPE_WAREHOUSE_HOST": "wg.123456789012.us-east-1.redshift-serverless.amazonaws.com",
            "TXPIPE_WAREHOUSE_PORT": "5439", "TXPIPE_WAREHOUSE_DB": "txpipe", "TXPIPE_WAREHOUSE_SECRET": "iam:role",
            "TXPIPE_WAREHOUSE_WORKGROUP": "txpipe-dev", "AWS_REGION": "us-east-1"}
STAGE_ENV = {"TXPIPE_WAREHOUSE_STAGE_BUCKET": "txpipe-dev-stage", "TXPIPE_WAREHOUSE_STAGE_PREFIX": "stage/",
             "TXPIPE_WAREHOUSE_COPY_ROLE": ROLE}


def backend_for(variables: dict[str, str]) -> Warehouse:
    with env.function_environment(variables):
        return env.warehouse_backend()


def test_env_builds_the_redshift_backend_with_its_batch_files() -> None:
    """kind redshift with the stack's batch-file variables: COPY from S3, TLS on, the workgroup's IAM login."""
    backend = backend_for({**ENDPOINT, **STAGE_ENV, "TXPIPE_WAREHOUSE_KIND": "redshift"})
    assert isinstance(backend, RedshiftWarehouse)
    assert backend.batch_files == STAGE and backend.ssl is True
    assert backend.iam_target == {"workgroup": "txpipe-dev", "cluster": "", "region": "us-east-1"}
    assert backend_for({**ENDPOINT, **STAGE_ENV, "TXPIPE_WAREHOUSE_KIND": "redshift"}) is backend  # reused warm
    no_bucket = backend_for({**ENDPOINT, "TXPIPE_WAREHOUSE_KIND": "redshift"})
    assert isinstance(no_bucket, RedshiftWarehouse) and no_bucket.batch_files is None
    assert isinstance(backend_for({**ENDPOINT, "TXPIPE_WAREHOUSE_KIND": "postgres"}), PostgresWarehouse)


@pytest.mark.parametrize(("change", "message"), [
    ({"TXPIPE_WAREHOUSE_COPY_ROLE": ""}, "TXPIPE_WAREHOUSE_COPY_ROLE is not"),
    ({"TXPIPE_WAREHOUSE_STAGE_BUCKET": "Not A Bucket"}, "TXPIPE_WAREHOUSE_STAGE_BUCKET"),
    ({"TXPIPE_WAREHOUSE_KIND": "bigquery"}, "not supported"),
])
def test_env_refuses_incomplete_or_unsafe_batch_file_settings(change, message) -> None:
    with pytest.raises(RuntimeError, match=message):
        backend_for({**ENDPOINT, **STAGE_ENV, "TXPIPE_WAREHOUSE_KIND": "redshift", **change})

"""Warehouse SQL must run on Amazon Redshift and PostgreSQL alike: parse it with sqlglot, ban PG-only syntax.

Module constants are checked directly. Statements written inline in functions (reporting.state_report, all_states,
views_freshness, last_sync, sla_report, refresh_views; schema.migrate, load_state_population) and the ones each
warehouse backend sends while run_sync loads a batch (Redshift's COPY from S3 and its multi-row INSERT) are
captured by running those functions against a recording fake connection, so this test follows the
source instead of a copy.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from lambdas.core import access, reporting, schema, sync
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3BatchFiles
from tests.support.fakes import ScriptedConnection, SelfCursor
from tests.support.scripted_aws import null_s3

STAGE = S3BatchFiles("txpipe-dev-stage", "stage/", "arn:aws:iam::123456789012:role/txpipe-dev-CopyRole-1A2B")


class RecordingConnection(SelfCursor):
    """A DB-API-ish connection whose cursor records every statement and answers with canned rows."""

    rowcount = 0

    def __init__(self, row: Any = None, fetchall: list[list[Any]] | None = None) -> None:
        self.statements: list[str] = []
        self._row = row
        self._fetchall = list(fetchall or [])

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)

    def fetchone(self) -> Any:
        return self._row

    def fetchall(self) -> list[Any]:
        return self._fetchall.pop(0) if self._fetchall else []

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


def _captured() -> dict[str, list[str]]:
    """Runs each warehouse-side function against a recorder; returns the SQL each one executed."""
    out: dict[str, list[str]] = {}

    conn = RecordingConnection()
    reporting.refresh_views(conn)
    out["reporting.refresh_views"] = conn.statements

    conn = RecordingConnection(row=None)
    reporting.state_report(conn, "TX", ranked=[{"state": "TX"}])
    out["reporting.state_report"] = conn.statements

    conn = RecordingConnection()
    reporting.all_states(conn)
    out["reporting.all_states"] = conn.statements

    conn = RecordingConnection(row=(0,))
    reporting.views_freshness(conn)
    out["reporting.views_freshness"] = conn.statements

    conn = RecordingConnection(row=None)
    reporting.last_sync(conn)
    out["reporting.last_sync"] = conn.statements

    oltp = ScriptedConnection({"FROM orders WHERE": [(0, 0)], "FROM outbox": [(0, None, 0, 0, None, 0, 0)]})
    conn = RecordingConnection(row=(0, None, None, None, None, 0))
    reporting.sla_report(oltp, conn, sla_seconds=900, since_seconds=3600, now=datetime(2024, 1, 1, tzinfo=UTC))
    out["reporting.sla_report"] = conn.statements

    conn = RecordingConnection(fetchall=[[]])
    schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS)
    out["schema.migrate(warehouse)"] = conn.statements

    conn = RecordingConnection()
    schema.load_state_population(conn)
    out["schema.load_state_population"] = conn.statements

    stamp = datetime(2024, 1, 1, tzinfo=UTC)
    claimed = [("o-1", 1, "TX", "cheese", 1, 12.99, stamp, stamp)]
    for name, backend in (("sync.run_sync(redshift, S3)", RedshiftWarehouse(batch_files=STAGE, s3=null_s3())),
                          ("sync.run_sync(redshift, INSERT)", RedshiftWarehouse())):
        oltp, conn = RecordingConnection(row=(0, 0, None), fetchall=[list(claimed)]), RecordingConnection()
        sync.run_sync(oltp, conn, backend=backend, batch_rows=10, now=lambda: stamp)
        out[name] = conn.statements
    return out


CAPTURED = _captured()

CONSTANTS: dict[str, str] = {
    **{f"schema.WAREHOUSE_MIGRATIONS[v{version}][{i}]": sql
       for version, statements in schema.WAREHOUSE_MIGRATIONS for i, sql in enumerate(statements)},
    "schema.MIGRATIONS_TABLE": schema.MIGRATIONS_TABLE,
    "schema.BATCH_TABLE_DDL": schema.BATCH_TABLE_DDL,
    "schema.BATCH_TABLE_CLEAR": schema.BATCH_TABLE_CLEAR,
    "schema.MERGE_SQL": schema.MERGE_SQL,
    "schema.RECORD_RUN_SQL": schema.RECORD_RUN_SQL,
    "reporting.LAG_SQL": reporting.LAG_SQL,
}


def _all_statements() -> dict[str, str]:
    statements = dict(CONSTANTS)
    known = set(statements.values())
    for function, sqls in CAPTURED.items():
        for i, sql in enumerate(sqls):
            if sql not in known:
                known.add(sql)
                statements[f"{function}#{i}"] = sql
    return statements


STATEMENTS = _all_statements()

# PostgreSQL-only syntax that Redshift rejects (sqlglot's redshift reader is lenient about some of it).
PG_ONLY = {
    "ON CONFLICT": re.compile(r"\bON\s+CONFLICT\b", re.I),
    "SKIP LOCKED": re.compile(r"\bSKIP\s+LOCKED\b", re.I),
    ":: cast": re.compile(r"::"),
    "FILTER (": re.compile(r"\bFILTER\s*\(", re.I),
    "RETURNING": re.compile(r"\bRETURNING\b", re.I),
    "FOR UPDATE/SHARE": re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.I),
    "ANY(array)": re.compile(r"\bANY\s*\(", re.I),
    "ARRAY[": re.compile(r"\bARRAY\s*\[", re.I),
    "COPY FROM STDIN": re.compile(r"\bFROM\s+STDIN\b", re.I),
}
REFRESH = re.compile(r"REFRESH MATERIALIZED VIEW [a-z_][a-z0-9_]*")


def bind(sql: str) -> str:
    """Replaces DB-API %s placeholders with a literal so the text is plain SQL."""
    return sql.replace("%s", "'x'")


STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def pg_only_constructs(sql: str) -> list[str]:
    """The PostgreSQL-only syntax in a statement, outside its string literals (an ARN's "::" is data)."""
    syntax = STRING_LITERAL.sub("''", sql)
    return [name for name, pattern in PG_ONLY.items() if pattern.search(syntax)]


def test_inline_statements_were_captured() -> None:
    """The recorder saw every warehouse query path (so the parametrized checks below are not vacuous)."""
    assert len(CAPTURED["reporting.refresh_views"]) == len(schema.MATERIALIZED_VIEWS) + 2  # the stamp, the record
    assert len(CAPTURED["reporting.all_states"]) == 1
    assert len(CAPTURED["reporting.views_freshness"]) == 2
    assert len(CAPTURED["reporting.state_report"]) == 1  # its totals are all_states' row
    assert len(CAPTURED["reporting.last_sync"]) == 1
    assert CAPTURED["reporting.sla_report"][0] == reporting.LAG_SQL
    assert len(CAPTURED["reporting.sla_report"]) == 3
    migrated = CAPTURED["schema.migrate(warehouse)"]
    assert migrated[0] == schema.MIGRATIONS_TABLE
    assert all(sql in migrated for _, statements in schema.WAREHOUSE_MIGRATIONS for sql in statements)
    assert len(CAPTURED["schema.load_state_population"]) == 2


def test_sync_runs_only_the_checked_warehouse_statements() -> None:
    """run_sync sends the schema's constants around each backend's own load: COPY from S3, or one INSERT."""
    copy, insert = CAPTURED["sync.run_sync(redshift, S3)"], CAPTURED["sync.run_sync(redshift, INSERT)"]
    assert copy[:2] == insert[:2] == [schema.BATCH_TABLE_DDL, schema.BATCH_TABLE_CLEAR]
    assert copy[3:] == insert[3:] == [schema.MERGE_SQL, schema.RECORD_RUN_SQL]
    assert copy[2].startswith("COPY orders_batch (") and insert[2].startswith("INSERT INTO orders_batch (")


def test_the_copy_names_the_stage_columns_object_and_role() -> None:
    """Read as Redshift, the COPY loads BATCH_COLUMNS into orders_batch from the batch's object, as the role."""
    statement = CAPTURED["sync.run_sync(redshift, S3)"][2]
    [parsed] = sqlglot.parse(statement, read="redshift", error_level=ErrorLevel.RAISE)
    assert isinstance(parsed, exp.Copy)
    assert parsed.this.this.name == "orders_batch"
    assert tuple(column.name for column in parsed.this.expressions) == schema.BATCH_COLUMNS
    [source] = parsed.args["files"]
    assert source.this == f"s3://txpipe-dev-stage/{STAGE.key([('o-1',)])}"
    assert parsed.args["credentials"].args["iam_role"].this == STAGE.role_arn
    params = {param.this.name: param.expression for param in parsed.args["params"]}
    # sqlglot reads "CSV GZIP" as one parameter (CSV, valued GZIP): both words are there, in that order.
    assert params["CSV"].name == "GZIP" and params["TIMEFORMAT"].this == "auto"
    assert params["NULL"].this == "\x00"  # NULL AS '\0' reads as one NUL: no text field of ours can be NULL


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_parses_as_redshift(sql: str) -> None:
    """The statement parses as exactly one Redshift statement (REFRESH is the only opaque command allowed)."""
    parsed = sqlglot.parse(bind(sql), read="redshift", error_level=ErrorLevel.RAISE)
    assert len(parsed) == 1 and parsed[0] is not None
    if isinstance(parsed[0], exp.Command):
        assert REFRESH.fullmatch(sql.strip()), f"sqlglot could not parse this, only wrap it: {sql}"
    else:
        assert parsed[0].sql(dialect="redshift")


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_parses_as_postgres(sql: str) -> None:
    """The statement also parses as one PostgreSQL statement (the local warehouse stand-in)."""
    parsed = sqlglot.parse(bind(sql), read="postgres", error_level=ErrorLevel.RAISE)
    assert len(parsed) == 1 and parsed[0] is not None


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_transpiles_postgres_to_redshift_without_unsupported_features(sql: str) -> None:
    """Read as PostgreSQL, the statement needs no feature sqlglot knows Redshift lacks (e.g. locking reads)."""
    [out] = sqlglot.transpile(bind(sql), read="postgres", write="redshift", unsupported_level=ErrorLevel.RAISE)
    assert out


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_no_postgres_only_constructs(sql: str) -> None:
    """No ON CONFLICT, SKIP LOCKED, :: casts, FILTER (...), RETURNING, locking reads, arrays or COPY STDIN."""
    assert pg_only_constructs(sql) == []


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        (sync.CLAIM_SQL, "SKIP LOCKED"),
        ("INSERT INTO t (a) VALUES (%s) ON CONFLICT (a) DO NOTHING", "ON CONFLICT"),
        ("SELECT a::int FROM t", ":: cast"),
        ("SELECT count(*) filter (where a > 1) FROM t", "FILTER ("),
        ("DELETE FROM outbox WHERE order_id = ANY(%s)", "ANY(array)"),
    ],
)
def test_checker_flags_postgres_only_sql(sql: str, construct: str) -> None:
    """The text check does catch PostgreSQL-only syntax (including the OLTP claim query, which may use it)."""
    assert construct in pg_only_constructs(sql)


def test_checker_reads_syntax_not_string_literals() -> None:
    """A construct inside a literal is data; the same text outside one is syntax."""
    assert pg_only_constructs("SELECT 'a::b', 'ON CONFLICT'") == []
    assert pg_only_constructs("SELECT 'it''s'::text") == [":: cast"]


def test_transpile_check_flags_locking_reads() -> None:
    """The transpile check fails for the OLTP claim query's FOR UPDATE ... SKIP LOCKED."""
    with pytest.raises(sqlglot.errors.UnsupportedError):
        sqlglot.transpile(bind(sync.CLAIM_SQL), read="postgres", write="redshift",
                          unsupported_level=ErrorLevel.RAISE)


def _columns(ddl: str) -> list[tuple[str, str, bool, bool]]:
    """(name, type, NOT NULL, PRIMARY KEY) of each column of a CREATE TABLE, read as Redshift."""
    [create] = sqlglot.parse(ddl.replace("{}", "t"), read="redshift", error_level=ErrorLevel.RAISE)
    out = []
    for column in create.this.expressions:
        kinds = {type(c.args["kind"]) for c in column.args.get("constraints", [])}
        out.append((column.name, column.args["kind"].sql(dialect="redshift"),
                    exp.NotNullColumnConstraint in kinds, exp.PrimaryKeyColumnConstraint in kinds))
    return out


def test_fact_stage_and_benchmark_targets_are_one_column_list() -> None:
    """orders_fact as migration 1 created it, the sync's stage and the benchmarks' target tables have the same
    columns and types: the stage and the targets from schema.ORDER_COLUMNS, which must stay what the fact table
    holds; the fact table adds loaded_at, the stage drops NOT NULL and the key."""
    from benchmarks.stack import TARGET_DDL

    [fact_ddl] = [sql for sql in dict(schema.WAREHOUSE_MIGRATIONS)[1] if "TABLE IF NOT EXISTS orders_fact" in sql]
    fact, stage, target = _columns(fact_ddl), _columns(schema.BATCH_TABLE_DDL), _columns(TARGET_DDL)
    assert fact[:-1] == target and fact[-1] == ("loaded_at", "TIMESTAMP WITH TIME ZONE", True, False)
    assert [(n, t) for n, t, _, _ in stage] == [(n, t) for n, t, _, _ in target]
    assert not any(not_null or key for _, _, not_null, key in stage)
    # Migration 1 is applied on every deployed warehouse: its table must never change shape (add a migration).
    assert fact == [("order_id", "VARCHAR(64)", True, True), ("customer_id", "BIGINT", True, False),
                    ("state", "CHAR(2)", True, False), ("pizza_type", "VARCHAR(32)", True, False),
                    ("qty", "INTEGER", True, False), ("retail_price", "DECIMAL(8, 2)", True, False),
                    ("accepted_at", "TIMESTAMP WITH TIME ZONE", True, False),
                    ("stored_at", "TIMESTAMP WITH TIME ZONE", True, False),
                    ("loaded_at", "TIMESTAMP WITH TIME ZONE", True, False)]


def test_redshift_keys_alters_only_what_differs_in_redshift_sql() -> None:
    """A table without the keys gets its ALTERs (each parsed as Redshift's own ALTER, not an opaque
    command); run again against tables that have them, nothing is altered."""
    bare = RecordingConnection(fetchall=[[("order_id", False, 0)], [("started_at", False, 0)]])
    ran = access.redshift_keys(bare)
    assert ran == ["ALTER TABLE orders_fact ALTER DISTSTYLE KEY DISTKEY customer_id",
                   "ALTER TABLE orders_fact ALTER COMPOUND SORTKEY (accepted_at)",
                   "ALTER TABLE sync_runs ALTER COMPOUND SORTKEY (finished_at)"]
    for statement in bare.statements:
        [parsed] = sqlglot.parse(bind(statement), read="redshift", error_level=ErrorLevel.RAISE)
        assert not isinstance(parsed, exp.Command), statement
    keyed = RecordingConnection(fetchall=[[("customer_id", True, 0), ("accepted_at", False, 1)],
                                          [("finished_at", False, 1)]])
    assert access.redshift_keys(keyed) == []


@pytest.mark.parametrize("sql", [*access.WAREHOUSE_INDEXES_POSTGRES, *schema.REFRESH_STATEMENTS_POSTGRES])
def test_postgres_only_warehouse_statements_parse_as_postgres(sql: str) -> None:
    """The local warehouse's indexes and concurrent refresh (never sent to Redshift: see reporting.refresh_views
    and ops._migrate) are single PostgreSQL statements."""
    assert len(sqlglot.parse(sql, read="postgres", error_level=ErrorLevel.RAISE)) == 1

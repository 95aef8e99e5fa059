"""Redshift SQL that Redshift documents: one declared list of what the warehouse SQL relies on, each entry with
the page of the Amazon Redshift Database Developer Guide that documents it, and a check of every statement the
code sends to a Redshift warehouse against that list.

What is sent is captured, not copied: the functions' handlers (ops: migrate, with the Redshift users, grants,
view owners and keys; report, freshness, sla_report, status; refresh; sync, with the S3 COPY and with the
multi-row INSERT) run against a recording warehouse connection, as they run on AWS with
TXPIPE_WAREHOUSE_KIND=redshift. Every SQL constant of the modules that hold warehouse SQL is accounted for: either
some function sends it to Redshift (and it is checked here), or it is declared, with why, as never sent there
(the OLTP database's SQL, the local PostgreSQL warehouse's).

Each statement must parse as one Redshift statement with sqlglot's redshift dialect, rely only on documented
forms, functions, types and catalog tables, and call no leader-node-only function (Redshift refuses those in a
statement that touches a user table: CURRENT_TIMESTAMP and NOW() among them). `test_the_check_refuses` proves
the check can fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.tokens import TokenType

from lambdas import ops, refresh
from lambdas import sync as sync_function
from lambdas.core import env, reporting, schema, sync
from lambdas.core import warehouse as warehouse_package
from lambdas.core.warehouse import postgres as postgres_warehouse
from lambdas.core.warehouse import redshift as redshift_warehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3Stage
from tests.support.fakes import ScriptedConnection
from tests.support.scripted_aws import null_s3

DOCS = "https://docs.aws.amazon.com/redshift/latest/dg/"

# --------------------------------------------------------------------------- the declared list
# What the warehouse SQL relies on, and where Redshift documents it. A form not here is refused; an entry no
# statement uses any more fails test_every_entry_is_relied_on (the list stays what the code needs).
DOCUMENTED: dict[str, str] = {
    # statements
    "CREATE TABLE IF NOT EXISTS": DOCS + "r_CREATE_TABLE_NEW.html",
    "CREATE TEMP TABLE IF NOT EXISTS": DOCS + "r_CREATE_TABLE_NEW.html",  # the sync's stage
    "column NOT NULL": DOCS + "r_CREATE_TABLE_NEW.html",
    "column PRIMARY KEY": DOCS + "r_CREATE_TABLE_NEW.html",  # informational: Redshift does not enforce it
    "ALTER TABLE ALTER DISTSTYLE KEY DISTKEY": DOCS + "r_ALTER_TABLE.html",
    "ALTER TABLE ALTER COMPOUND SORTKEY": DOCS + "r_ALTER_TABLE.html",
    "ALTER TABLE ADD COLUMN": DOCS + "r_ALTER_TABLE.html",  # orders_fact's snapshot_at (migration 3)
    "column DEFAULT": DOCS + "r_ALTER_TABLE.html",  # ADD COLUMN ... DEFAULT: the rows already there get it
    "CREATE MATERIALIZED VIEW": DOCS + "materialized-view-create-sql-command.html",
    "DROP MATERIALIZED VIEW IF EXISTS": DOCS + "materialized-view-drop-sql-command.html",
    "REFRESH MATERIALIZED VIEW": DOCS + "materialized-view-refresh-sql-command.html",
    "TRUNCATE": DOCS + "r_TRUNCATE.html",
    "INSERT INTO ... VALUES": DOCS + "r_INSERT_30.html",  # the run, refresh and migration records, multi-row loads
    "INSERT INTO ... SELECT": DOCS + "r_INSERT_30.html",  # the merge into orders_fact
    "DELETE": DOCS + "r_DELETE.html",
    "UPDATE": DOCS + "r_UPDATE.html",  # the refresh's stamp of the fact rows its snapshot takes in
    "COPY FROM 's3://'": DOCS + "copy-parameters-data-source-s3.html",
    "COPY IAM_ROLE": DOCS + "copy-parameters-authorization.html",
    "COPY CSV": DOCS + "copy-parameters-data-format.html",
    "COPY GZIP": DOCS + "copy-parameters-file-compression.html",
    "COPY TIMEFORMAT 'auto'": DOCS + "copy-parameters-data-conversion.html",
    "COPY NULL AS": DOCS + "copy-parameters-data-conversion.html",
    "CREATE USER PASSWORD DISABLE": DOCS + "r_CREATE_USER.html",
    "GRANT SELECT ON TABLE": DOCS + "r_GRANT.html",
    "GRANT INSERT ON TABLE": DOCS + "r_GRANT.html",
    "GRANT UPDATE (columns) ON TABLE": DOCS + "r_GRANT.html",  # column-level: the refresh's stamp column only
    "SET SESSION AUTHORIZATION": DOCS + "r_SET_SESSION_AUTHORIZATION.html",  # a user, and DEFAULT to return
    "SELECT": DOCS + "r_SELECT_synopsis.html",
    # reads of catalog tables only: they run on the leader node alone
    "SELECT from catalog tables": DOCS + "c_join_PG.html",
    "catalog PG_USER": DOCS + "r_Users-creatingaltering-and-deleting-users.html",
    "catalog PG_CLASS": DOCS + "c_join_PG.html",
    "catalog PG_TABLE_DEF": DOCS + "r_PG_TABLE_DEF.html",
    # clauses of the SELECTs (the reports', the views', the merge's)
    "JOIN": DOCS + "r_FROM_clause30.html",
    "LEFT JOIN": DOCS + "r_FROM_clause30.html",
    "subquery in FROM": DOCS + "r_FROM_clause30.html",
    "scalar subquery": DOCS + "r_scalar_subqueries.html",
    "GROUP BY": DOCS + "r_GROUP_BY_clause.html",
    "ORDER BY": DOCS + "r_ORDER_BY_clause.html",
    "LIMIT": DOCS + "r_ORDER_BY_clause.html",
    # functions
    "function COUNT": DOCS + "r_COUNT.html",
    "function SUM": DOCS + "r_SUM.html",
    "function MAX": DOCS + "r_MAX.html",
    "function COALESCE": DOCS + "r_NVL_function.html",
    "function CAST": DOCS + "r_CAST_function.html",
    "function CASE": DOCS + "r_CASE_function.html",
    "function EXTRACT": DOCS + "r_EXTRACT_function.html",  # EPOCH of a TIMESTAMPTZ (r_Dateparts_for_datetime_functions)
    "function PERCENTILE_CONT": DOCS + "r_PERCENTILE_CONT.html",  # compute-node only: reads orders_fact
    "function ROW_NUMBER": DOCS + "r_WF_ROW_NUMBER.html",  # OVER (PARTITION BY ... ORDER BY ...): each state's top 3
    # column and cast types
    "type VARCHAR": DOCS + "c_Supported_data_types.html",
    "type CHAR": DOCS + "c_Supported_data_types.html",
    "type INT": DOCS + "c_Supported_data_types.html",  # written INTEGER
    "type BIGINT": DOCS + "c_Supported_data_types.html",
    "type DECIMAL": DOCS + "c_Supported_data_types.html",
    "type TIMESTAMPTZ": DOCS + "c_Supported_data_types.html",
}

# Redshift's leader-node-only functions (c_SQL_functions_leader_node_only.html): they fail in any statement that
# references a user table, e.g. CURRENT_TIMESTAMP in an INSERT. The deprecated date functions are listed there
# too. GETBIT is the page's spelling of PostgreSQL's GET_BIT; both are here.
LEADER_NODE_ONLY = frozenset({
    "CURRENT_SCHEMA", "CURRENT_SCHEMAS", "HAS_DATABASE_PRIVILEGE", "HAS_SCHEMA_PRIVILEGE", "HAS_TABLE_PRIVILEGE",
    "SUBSTR", "FACTORIAL", "AGE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME", "ISFINITE", "NOW",
    "GETBIT", "GET_BIT", "GET_BYTE", "SET_BIT", "SET_BYTE", "TO_ASCII",
})
NILADIC = frozenset({"CURRENT_SCHEMA", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME"})  # called without ()
# Compute-node-only functions (c_SQL_functions_compute_node_only.html) need a user table in the statement.
COMPUTE_NODE_ONLY = frozenset({"LISTAGG", "MEDIAN", "PERCENTILE_CONT", "PERCENTILE_DISC"})

# sqlglot 30's redshift grammar has no rule for these statements: it logs "unsupported syntax" and returns an
# exp.Command holding the text. Each is then matched whole against the synopsis of its page instead of being
# skipped; a Command matching none of them is refused.
_USER = r'"[^"]+"'
COMMANDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("SET SESSION AUTHORIZATION", re.compile(rf"SET SESSION AUTHORIZATION (?:DEFAULT|{_USER}|'[^']+')")),
    ("CREATE USER PASSWORD DISABLE", re.compile(rf"CREATE USER {_USER} PASSWORD DISABLE")),
    ("REFRESH MATERIALIZED VIEW", re.compile(r"REFRESH MATERIALIZED VIEW [a-z_][a-z0-9_]*")),
    # sqlglot parses a GRANT on one table, not on a list of them; the privileges are named by the forms below.
    ("GRANT", re.compile(rf"GRANT (?P<privileges>[A-Z]+(?:, [A-Z]+)*) ON [a-z_]+(?:, [a-z_]+)* TO {_USER}")),
)


# --------------------------------------------------------------------------- what a statement relies on
def parse(sql: str) -> exp.Expression:
    """The statement as Redshift's grammar reads it; exactly one (redshift-connector sends one per execute)."""
    statements = sqlglot.parse(sql, read="redshift", error_level=ErrorLevel.RAISE)
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"not exactly one statement: {sql!r}")
    return statements[0]


def _command_forms(sql: str) -> list[str]:
    text = " ".join(sql.split())
    for form, pattern in COMMANDS:
        match = pattern.fullmatch(text)
        if match and form == "GRANT":
            return [f"GRANT {privilege} ON TABLE" for privilege in match["privileges"].split(", ")]
        if match:
            return [form]
    return [f"a statement sqlglot cannot parse: {' '.join(text.split()[:3])}"]


def _copy_forms(copy: exp.Copy) -> Iterator[str]:
    files = copy.args.get("files") or []
    if copy.args.get("kind") and files and all(isinstance(f, exp.Literal) and f.is_string
                                                and f.this.startswith("s3://") for f in files):
        yield "COPY FROM 's3://'"
    else:
        yield "COPY FROM " + ", ".join(f.sql(dialect="redshift") for f in files)
    credentials = copy.args.get("credentials")
    for name, value in (credentials.args.items() if credentials else ()):
        if value:
            yield f"COPY {name.upper()}"
    for param in copy.args.get("params") or []:
        name, value = param.this.name.upper(), param.args.get("expression")
        if name == "TIMEFORMAT":
            yield f"COPY TIMEFORMAT {value.sql(dialect='redshift') if value else ''}".rstrip()
        elif name == "NULL":
            yield "COPY NULL AS"
        else:
            yield f"COPY {name}"
            if name == "CSV" and isinstance(value, exp.Var):  # sqlglot reads "CSV GZIP" as CSV valued GZIP
                yield f"COPY {value.name.upper()}"


def _statement_forms(tree: exp.Expression) -> Iterator[str]:
    if isinstance(tree, exp.Create):
        properties = {type(p) for p in (tree.args.get("properties") or exp.Properties()).expressions}
        exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
        if tree.kind == "TABLE":
            yield ("CREATE TEMP TABLE" if exp.TemporaryProperty in properties else "CREATE TABLE") + exists
        elif tree.kind == "VIEW" and exp.MaterializedProperty in properties:
            yield "CREATE MATERIALIZED VIEW" + exists
        else:
            yield f"CREATE {tree.kind}"
    elif isinstance(tree, exp.Drop):
        materialized = "MATERIALIZED " if tree.args.get("materialized") else ""
        yield f"DROP {materialized}{tree.kind}" + (" IF EXISTS" if tree.args.get("exists") else "")
    elif isinstance(tree, exp.Alter):
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.AlterDistStyle):
                style = "KEY DISTKEY" if isinstance(action.this, exp.Column) else action.this.name.upper()
                yield f"ALTER {tree.kind} ALTER DISTSTYLE {style}"
            elif isinstance(action, exp.AlterSortKey):
                yield f"ALTER {tree.kind} ALTER {'COMPOUND ' if action.args.get('compound') else ''}SORTKEY"
            elif isinstance(action, exp.ColumnDef):
                yield f"ALTER {tree.kind} ADD COLUMN"
            else:
                yield f"ALTER {tree.kind} {type(action).__name__}"
    elif isinstance(tree, exp.TruncateTable):
        yield "TRUNCATE"
    elif isinstance(tree, exp.Insert):
        yield "INSERT INTO ... VALUES" if isinstance(tree.expression, exp.Values) else "INSERT INTO ... SELECT"
    elif isinstance(tree, exp.Delete):
        yield "DELETE"
    elif isinstance(tree, exp.Update):
        yield "UPDATE"
    elif isinstance(tree, exp.Copy):
        yield from _copy_forms(tree)
    elif isinstance(tree, exp.Grant):
        on = "TABLE" if tree.args.get("kind") in (None, "TABLE") else tree.args["kind"]
        for privilege in tree.args.get("privileges") or []:
            columns = " (columns)" if privilege.expressions else ""
            yield f"GRANT {privilege.this.name.upper()}{columns} ON {on}"
    elif isinstance(tree, exp.Select):
        tables = {t.name.lower() for t in tree.find_all(exp.Table)}
        catalog = {t for t in tables if t.startswith("pg_")}
        if not catalog:
            yield "SELECT"
        elif catalog == tables:
            yield "SELECT from catalog tables"
        else:
            yield "SELECT joining catalog tables to user tables"
    else:
        yield f"statement {type(tree).__name__}"


def _function_name(node: exp.Func) -> str:
    return node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()


def _part_forms(tree: exp.Expression) -> Iterator[str]:
    """Clauses, functions, types and catalog tables anywhere in the statement (its SELECTs included)."""
    user_table = any(not t.name.lower().startswith("pg_") for t in tree.find_all(exp.Table))
    for node in tree.walk():
        if isinstance(node, exp.Join):
            yield " ".join(filter(None, (node.side.upper(), node.kind.upper(), "JOIN")))
        elif isinstance(node, exp.Group):
            yield "GROUP BY"
        elif isinstance(node, exp.Order) and isinstance(node.parent, exp.Select):
            yield "ORDER BY"
        elif isinstance(node, exp.Limit):
            yield "LIMIT"
        elif isinstance(node, exp.Subquery):
            yield "subquery in FROM" if isinstance(node.parent, (exp.From, exp.Join)) else "scalar subquery"
        elif isinstance(node, exp.ColumnConstraint):
            kind = node.args["kind"]
            yield {exp.NotNullColumnConstraint: "column NOT NULL", exp.PrimaryKeyColumnConstraint: "column PRIMARY KEY",
                   exp.DefaultColumnConstraint: "column DEFAULT"}.get(type(kind), f"column {kind.sql()}")
        elif isinstance(node, exp.DataType):
            yield f"type {node.this.name}"
        elif isinstance(node, exp.Table) and node.name.lower().startswith("pg_"):
            yield f"catalog {node.name.upper()}"
        elif isinstance(node, exp.Func) and not isinstance(node, exp.Connector) and not (
                isinstance(node, exp.If) and isinstance(node.parent, exp.Case)):
            name = _function_name(node)  # (AND and OR are operators to sqlglot too; an If in a Case is a WHEN)
            yield f"function {name}"
            if name in COMPUTE_NODE_ONLY and not user_table:
                yield f"compute-node-only function {name} without a user table"


def forms(sql: str) -> list[str]:
    """Everything the statement relies on, each named as in DOCUMENTED."""
    tree = parse(sql)
    if isinstance(tree, exp.Command):
        return _command_forms(sql)
    return list(dict.fromkeys([*_statement_forms(tree), *_part_forms(tree)]))


def undocumented(sql: str) -> list[str]:
    return [form for form in forms(sql) if form not in DOCUMENTED]


def leader_node_only_calls(sql: str) -> list[str]:
    """The leader-node-only functions the statement calls, read from its tokens as written (sqlglot's tree reads
    NOW(), GETDATE() and CURRENT_TIMESTAMP as one node). String literals and quoted names are data."""
    tokens = sqlglot.tokenize(sql, read="redshift")
    calls = []
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        name = token.text.upper()
        if token.token_type in (TokenType.STRING, TokenType.IDENTIFIER) or name not in LEADER_NODE_ONLY:
            continue
        if name in NILADIC or (following is not None and following.token_type == TokenType.L_PAREN):
            calls.append(name)
    return calls


# --------------------------------------------------------------------------- what the code sends to Redshift
STAGE = S3Stage("txpipe-dev-stage", "stage/", "arn:aws:iam::123456789012:role/txpipe-dev-CopyRole-1A2B")
SYNC_USER, REFRESH_USER = "IAMR:txpipe-dev-SyncRole-1A2B3C", "IAMR:txpipe-dev-RefreshRole-4D5E6F"
ENVIRONMENT = {"TXPIPE_WAREHOUSE_KIND": "redshift", "TXPIPE_WAREHOUSE_SYNC_USER": SYNC_USER,
               "TXPIPE_WAREHOUSE_REFRESH_USER": REFRESH_USER}
STAMP = datetime(2024, 1, 1, tzinfo=UTC)
CLAIMED = [("o-1", 1, "TX", "cheese", 2, Decimal("16.99"), STAMP, STAMP),
           ("o-2", 2, "CA", "veggie", 1, Decimal("15.25"), STAMP, STAMP)]

# A fresh warehouse: no migration applied, no function user, the views the admin's, no keys; so every statement
# the migration can send is sent. The reports' reads answer with a row of their shape.
WAREHOUSE_ANSWERS: dict[str, list[tuple[Any, ...]]] = {
    "FROM schema_migrations": [],
    "FROM pg_user": [(0,)],
    "FROM pg_class": [("admin",)],
    "FROM pg_table_def": [],
    "FROM state_population p LEFT JOIN": [("TX", "Texas", 29145505, None, None, None, None)],
    "max(refreshed_at)": [(None,)],
    "WHERE snapshot_at IS NULL OR": [(0,)],
    "percentile_cont": [(0, None, None, None, None, 0)],
    "count(*) FROM orders_fact": [(0,)],
    "max(finished_at)": [(None,)],
}
OLTP_ANSWERS: dict[str, list[tuple[Any, ...]]] = {
    "FROM schema_migrations": [],
    "SKIP LOCKED": CLAIMED,  # the sync's claim: two orders to move
    "min(accepted_at), sum(": [(0, None, 0)],
    "FROM orders WHERE accepted_at >=": [(0, 0)],  # the SLA report: orders in the window, of them history's
    "FROM outbox) AS pending": [(0, None, 0, 0, None, 0, 0)],  # the SLA report: pending, live and history's
    "FILTER (WHERE NOT held)": [(0, 0, None)],  # the sync's backlog read: pending, being moved, oldest
    "count(*), min(accepted_at)": [(0, None)],
    "reltuples": [(None,)],
    "count(*)": [(0,)],
}


class IdleQueue:
    def stats(self) -> SimpleNamespace:
        return SimpleNamespace(visible=0, in_flight=0, dead_letters=0)


INVOCATIONS: dict[str, tuple[Callable[[], dict[str, Any]], RedshiftWarehouse]] = {
    "ops migrate": (lambda: ops.handler({"action": "migrate"}, None), RedshiftWarehouse()),
    "ops report": (lambda: ops.handler({"action": "report", "states": ["TX"]}, None), RedshiftWarehouse()),
    "ops report --all": (lambda: ops.handler({"action": "report", "all": True}, None), RedshiftWarehouse()),
    "ops sla_report": (lambda: ops.handler({"action": "sla_report", "sla_seconds": 900, "since_seconds": 3600},
                                           None), RedshiftWarehouse()),
    "ops status": (lambda: ops.handler({"action": "status"}, None), RedshiftWarehouse()),
    "refresh": (lambda: refresh.handler({}, None), RedshiftWarehouse()),
    "sync, COPY from S3": (lambda: sync_function.handler({}, None), RedshiftWarehouse(stage=STAGE, s3=null_s3())),
    "sync, multi-row INSERT": (lambda: sync_function.handler({}, None), RedshiftWarehouse()),
}


def _traffic() -> dict[str, list[str]]:
    """Each invocation's statements to the warehouse, the function's environment that of a Redshift deployment."""
    sent: dict[str, list[str]] = {}
    for name, (invoke, backend) in INVOCATIONS.items():
        warehouse, oltp = ScriptedConnection(WAREHOUSE_ANSWERS), ScriptedConnection(OLTP_ANSWERS)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(env, "environ", lambda: dict(ENVIRONMENT))
            patch.setattr(env, "oltp", lambda oltp=oltp: oltp)
            patch.setattr(env, "warehouse", lambda warehouse=warehouse: warehouse)
            patch.setattr(env, "warehouse_backend", lambda backend=backend: backend)
            patch.setattr(env, "queue", IdleQueue)
            result = invoke()
        if "error" in result or result.get("errors"):
            raise AssertionError(f"{name} did not run through: {result}")
        sent[name] = warehouse.statements
    return sent


TRAFFIC = _traffic()
STATEMENTS: dict[str, str] = {}
for _invocation, _statements in TRAFFIC.items():
    for _i, _sql in enumerate(_statements):
        if _sql not in STATEMENTS.values():
            STATEMENTS[f"{_invocation}#{_i}"] = _sql

# --------------------------------------------------------------------------- the modules' SQL constants
SCANNED: dict[str, ModuleType] = {"schema": schema, "sync": sync, "reporting": reporting,
                                  "warehouse": warehouse_package, "warehouse.postgres": postgres_warehouse,
                                  "warehouse.redshift": redshift_warehouse}
_SQL_START = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|GRANT|REVOKE|TRUNCATE|COPY|REFRESH|SET"
                        r"|RESET|WITH|DO|VACUUM|ANALYZE|MERGE)\b", re.IGNORECASE)
# The SQL constants no function sends to Redshift, and why.
NOT_SENT_TO_REDSHIFT: dict[str, str] = {
    "schema.OLTP_MIGRATIONS": "the OLTP database's schema (RDS PostgreSQL)",
    "schema.ENSURE_USERS": "PL/pgSQL: the OLTP database and the local PostgreSQL warehouse",
    "schema.OLTP_ACCESS": "the OLTP database's grants",
    "schema.WAREHOUSE_ACCESS_POSTGRES": "the local PostgreSQL warehouse's grants (ops._migrate, kind postgres)",
    "schema.WAREHOUSE_INDEXES_POSTGRES": "the local PostgreSQL warehouse's indexes (ops._migrate, kind postgres)",
    "schema.REFRESH_STATEMENTS_POSTGRES": "REFRESH ... CONCURRENTLY: PostgreSQL only (the refresh function's kind)",
    "sync._CLAIM_TEMPLATE": "the OLTP outbox claim",
    "sync._CLAIM_DELETE_TEMPLATE": "the OLTP outbox claim",
    "sync.CLAIM_SQL": "the OLTP outbox claim",
    "sync.CLAIM_DELETE_SQL": "the OLTP outbox claim",
    "sync.CLAIM_TEXT_SQL": "the OLTP outbox claim",
    "sync.CLAIM_DELETE_TEXT_SQL": "the OLTP outbox claim",
    "sync.DELETE_CLAIMED_SQL": "the OLTP outbox delete",
    "sync.BACKLOG_SQL": "the OLTP outbox backlog read",
    "reporting._COUNTS": "the OLTP database's counts (status)",
    "warehouse.postgres.COPY_SQL": "COPY FROM STDIN: the PostgreSQL warehouse's load",
}


def _sql_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if _SQL_START.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _sql_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _sql_in(item)


def _module_sql() -> dict[str, list[str]]:
    """Each SQL constant once, under the module that defines it (an imported one is the same object)."""
    found: dict[str, list[str]] = {}
    seen: set[int] = set()
    for prefix, module in SCANNED.items():
        for name, value in vars(module).items():
            statements = [] if name.startswith("__") or id(value) in seen else list(_sql_in(value))
            if statements:
                seen.add(id(value))
                found[f"{prefix}.{name}"] = statements
    return found


MODULE_SQL = _module_sql()


# --------------------------------------------------------------------------- the checks
def test_every_module_sql_constant_is_sent_to_redshift_or_declared_not_to_be() -> None:
    """The capture is the whole of it: each SQL constant of these modules is in what the functions send to
    Redshift, or declared above as never sent there; and a declared one never is."""
    sent = set(STATEMENTS.values())
    unaccounted = {name: [sql for sql in sqls if sql not in sent] for name, sqls in MODULE_SQL.items()
                   if name not in NOT_SENT_TO_REDSHIFT}
    assert {name: sqls for name, sqls in unaccounted.items() if sqls} == {}
    assert set(NOT_SENT_TO_REDSHIFT) <= set(MODULE_SQL), "a declared constant no longer exists"
    assert {name for name in NOT_SENT_TO_REDSHIFT if sent & set(MODULE_SQL[name])} == set()


def test_the_capture_saw_every_warehouse_path() -> None:
    """The migration created the users, re-created the views as the refresh user and gave the tables their keys;
    each sync loaded its way; the refresh refreshed (so the checks below are not vacuous)."""
    migrate = TRAFFIC["ops migrate"]
    assert migrate[0] == schema.MIGRATIONS_TABLE
    assert f'CREATE USER "{SYNC_USER}" PASSWORD DISABLE' in migrate
    assert migrate.count(f'SET SESSION AUTHORIZATION "{REFRESH_USER}"') == len(schema.VIEW_DDL)
    assert migrate.count("SET SESSION AUTHORIZATION DEFAULT") == len(schema.VIEW_DDL)
    assert migrate.count(schema.RECORD_MIGRATION_SQL) == len(schema.WAREHOUSE_MIGRATIONS)
    assert sum(s in schema._REDSHIFT_KEY_SQL.values() for s in migrate) == 3
    assert any(s.startswith("ALTER TABLE orders_fact ADD COLUMN snapshot_at") for s in migrate)
    assert any(s.startswith("COPY orders_stage (") for s in TRAFFIC["sync, COPY from S3"])
    assert any(s.startswith("INSERT INTO orders_stage (") for s in TRAFFIC["sync, multi-row INSERT"])
    assert set(schema.REFRESH_STATEMENTS) <= set(TRAFFIC["refresh"])
    assert TRAFFIC["refresh"][0] == schema.TAKE_SNAPSHOT_SQL  # the snapshot, before either view refreshes
    assert reporting.LAG_SQL in TRAFFIC["ops sla_report"]


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_parses_as_one_redshift_statement(sql: str) -> None:
    tree = parse(sql)
    assert sqlglot.parse_one(sql, read="redshift") is not None
    if isinstance(tree, exp.Command):  # one of the forms sqlglot cannot parse, matched whole (COMMANDS)
        assert not _command_forms(sql)[0].startswith("a statement sqlglot cannot parse"), sql


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_relies_only_on_what_redshift_documents(sql: str) -> None:
    assert undocumented(sql) == []


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_calls_no_leader_node_only_function(sql: str) -> None:
    assert leader_node_only_calls(sql) == []


def test_every_entry_is_relied_on() -> None:
    """The list is what the code relies on, no more: an entry nothing uses any more goes."""
    used = {form for sql in STATEMENTS.values() for form in forms(sql)}
    assert set(DOCUMENTED) - used == set()


def test_every_entry_names_its_redshift_page() -> None:
    assert all(re.fullmatch(re.escape(DOCS) + r"[A-Za-z0-9_-]+\.html", page) for page in DOCUMENTED.values())


@pytest.mark.parametrize(("sql", "refused"), [
    ("RESET SESSION AUTHORIZATION", "a statement sqlglot cannot parse: RESET SESSION AUTHORIZATION"),
    ("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, CURRENT_TIMESTAMP)", "CURRENT_TIMESTAMP"),
    ("INSERT INTO sync_runs (started_at, finished_at, synced, pending) VALUES (now(), now(), 0, 0)", "NOW"),
    ("SELECT count(*) FROM orders_fact WHERE accepted_at >= GETDATE()", "function CURRENT_TIMESTAMP"),
    ("SELECT current_schema()", "CURRENT_SCHEMA"),
    ("SELECT has_table_privilege('txpipe_sync', 'orders_fact', 'insert')", "HAS_TABLE_PRIVILEGE"),
    ("COPY orders_stage (order_id) FROM STDIN", "COPY FROM STDIN"),
    ("CREATE TABLE IF NOT EXISTS t (qty integer CHECK (qty > 0))", "column CHECK (qty > 0)"),
    ("CREATE TABLE IF NOT EXISTS t (payload jsonb)", "type JSONB"),
    ("SELECT u.usename FROM pg_user u JOIN orders_fact f ON f.customer_id = u.usesysid",
     "SELECT joining catalog tables to user tables"),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY usesysid) FROM pg_user",
     "compute-node-only function PERCENTILE_CONT without a user table"),
    ("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s", "function PG_GET_USERBYID"),
    ('GRANT ALL ON orders_fact TO "IAMR:x"', "GRANT ALL ON TABLE"),
])
def test_the_check_refuses(sql: str, refused: str) -> None:
    """What the code sent before (RESET SESSION AUTHORIZATION, CURRENT_TIMESTAMP in the migration record, the
    owner read through pg_get_userbyid) and other SQL Redshift does not document, or runs only on its leader
    node, is refused by the very checks the statements above pass."""
    assert refused in undocumented(sql) + leader_node_only_calls(sql)


def test_string_literals_and_quoted_names_are_data_not_calls() -> None:
    assert leader_node_only_calls("""SELECT 'now()', "age"(x) FROM t WHERE note = 'CURRENT_TIMESTAMP'""") == []

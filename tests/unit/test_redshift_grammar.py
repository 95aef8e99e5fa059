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
statement that touches a user table: CURRENT_TIMESTAMP and NOW() among them). The list and the check live in
tests/support/redshift_grammar.py; test_redshift_grammar_check.py proves the check can fail.
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

from lambdas import ops, refresh
from lambdas import sync as sync_function
from lambdas.core import access, env, reporting, schema, sync
from lambdas.core import warehouse as warehouse_package
from lambdas.core.warehouse import postgres as postgres_warehouse
from lambdas.core.warehouse import redshift as redshift_warehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3BatchFiles
from tests.support.fakes import ScriptedConnection
from tests.support.redshift_grammar import DOCUMENTED, command_forms, forms, leader_node_only_calls, parse, undocumented
from tests.support.scripted_aws import null_s3

# --------------------------------------------------------------------------- what the code sends to Redshift
STAGE = S3BatchFiles("txpipe-dev-stage", "stage/", "arn:aws:iam::123456789012:role/txpipe-dev-CopyRole-1A2B")
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
    "sync, COPY from S3": (lambda: sync_function.handler({}, None), RedshiftWarehouse(batch_files=STAGE, s3=null_s3())),
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
SCANNED: dict[str, ModuleType] = {"schema": schema, "access": access, "sync": sync, "reporting": reporting,
                                  "warehouse": warehouse_package, "warehouse.postgres": postgres_warehouse,
                                  "warehouse.redshift": redshift_warehouse}
_SQL_START = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|GRANT|REVOKE|TRUNCATE|COPY|REFRESH|SET"
                        r"|RESET|WITH|DO|VACUUM|ANALYZE|MERGE)\b", re.IGNORECASE)
# The SQL constants no function sends to Redshift, and why.
NOT_SENT_TO_REDSHIFT: dict[str, str] = {
    "schema.OLTP_MIGRATIONS": "the OLTP database's schema (RDS PostgreSQL)",
    "access.ENSURE_USERS": "PL/pgSQL: the OLTP database and the local PostgreSQL warehouse",
    "access.OLTP_ACCESS": "the OLTP database's grants",
    "access.WAREHOUSE_ACCESS_POSTGRES": "the local PostgreSQL warehouse's grants (ops._migrate, kind postgres)",
    "access.WAREHOUSE_INDEXES_POSTGRES": "the local PostgreSQL warehouse's indexes (ops._migrate, kind postgres)",
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
    assert sum(s in access._REDSHIFT_KEY_SQL.values() for s in migrate) == 3
    assert any(s.startswith("ALTER TABLE orders_fact ADD COLUMN snapshot_at") for s in migrate)
    assert any(s.startswith("COPY orders_batch (") for s in TRAFFIC["sync, COPY from S3"])
    assert any(s.startswith("INSERT INTO orders_batch (") for s in TRAFFIC["sync, multi-row INSERT"])
    assert set(schema.REFRESH_STATEMENTS) <= set(TRAFFIC["refresh"])
    assert TRAFFIC["refresh"][0] == schema.TAKE_SNAPSHOT_SQL  # the snapshot, before either view refreshes
    assert reporting.LAG_SQL in TRAFFIC["ops sla_report"]


@pytest.mark.parametrize("sql", list(STATEMENTS.values()), ids=list(STATEMENTS))
def test_parses_as_one_redshift_statement(sql: str) -> None:
    tree = parse(sql)
    assert sqlglot.parse_one(sql, read="redshift") is not None
    if isinstance(tree, exp.Command):  # one of the forms sqlglot cannot parse, matched whole (COMMANDS)
        assert not command_forms(sql)[0].startswith("a statement sqlglot cannot parse"), sql


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



"""The Redshift grammar check itself (tests/support/redshift_grammar.py): every entry of its declared list names
its page of the Amazon Redshift Database Developer Guide, and it refuses what Redshift does not document or runs on
its leader node only (so the checks of tests/unit/test_redshift_grammar.py can fail), reading string literals and
quoted names as data.
"""

from __future__ import annotations

import re

import pytest

from tests.support.redshift_grammar import DOCS, DOCUMENTED, leader_node_only_calls, undocumented


def test_every_entry_names_its_redshift_page() -> None:
    assert all(re.fullmatch(re.escape(DOCS) + r"[A-Za-z0-9_-]+\.html", page) for page in DOCUMENTED.values())


@pytest.mark.parametrize(("sql", "refused"), [
    ("RESET SESSION AUTHORIZATION", "a statement sqlglot cannot parse: RESET SESSION AUTHORIZATION"),
    ("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, CURRENT_TIMESTAMP)", "CURRENT_TIMESTAMP"),
    ("INSERT INTO sync_runs (started_at, finished_at, synced, pending) VALUES (now(), now(), 0, 0)", "NOW"),
    ("SELECT count(*) FROM orders_fact WHERE accepted_at >= GETDATE()", "function CURRENT_TIMESTAMP"),
    ("SELECT current_schema()", "CURRENT_SCHEMA"),
    ("SELECT has_table_privilege('txpipe_sync', 'orders_fact', 'insert')", "HAS_TABLE_PRIVILEGE"),
    ("COPY orders_batch (order_id) FROM STDIN", "COPY FROM STDIN"),
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
    node, is refused by the very checks the code's statements pass (test_redshift_grammar.py)."""
    assert refused in undocumented(sql) + leader_node_only_calls(sql)


def test_string_literals_and_quoted_names_are_data_not_calls() -> None:
    assert leader_node_only_calls("""SELECT 'now()', "age"(x) FROM t WHERE note = 'CURRENT_TIMESTAMP'""") == []

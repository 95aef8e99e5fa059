"""Redshift SQL that Redshift documents, as a check: the declared list of what the warehouse SQL relies on (each
entry with the page of the Amazon Redshift Database Developer Guide that documents it) and what one statement relies
on, read with sqlglot's redshift dialect: `forms`, `undocumented` (what it relies on that the list lacks) and
`leader_node_only_calls` (functions Redshift runs on its leader node only). tests/unit/test_redshift_grammar.py
checks every statement the code sends to Redshift with it; tests/unit/test_redshift_grammar_check.py checks the
check.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.tokens import TokenType

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


def command_forms(sql: str) -> list[str]:
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
        return command_forms(sql)
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

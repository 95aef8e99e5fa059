"""Schema migrations for the OLTP database and the warehouse.

Each database has an ordered list of migrations; `migrate` applies the ones not
yet recorded in its schema_migrations table, each in its own transaction, so a
re-run is a no-op and a failed run resumes where it stopped.

A migration's SQL is its own and frozen: written out in its list entry (or in a
constant named for its version, _..._V<n>), never built from what the code uses
today (ORDER_COLUMNS, VIEW_DDL), which a later release may change while every
deployed database keeps what the migration applied. A change is a new migration.
tests/unit/test_migrations_frozen.py pins a hash of each migration's statements.

Warehouse SQL must run on Amazon Redshift and on PostgreSQL alike (no ON CONFLICT,
no SKIP LOCKED, no PostgreSQL-only types); tests parse it with sqlglot's redshift dialect.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from importlib import resources
from typing import Any

OLTP_MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS customers (
               customer_id bigint PRIMARY KEY,
               state char(2) NOT NULL,
               name text
           )""",
        """CREATE TABLE IF NOT EXISTS orders (
               order_id varchar(64) PRIMARY KEY,
               customer_id bigint NOT NULL REFERENCES customers (customer_id),
               pizza_type varchar(32) NOT NULL,
               qty integer NOT NULL CHECK (qty BETWEEN 1 AND 100),
               retail_price numeric(8, 2) NOT NULL CHECK (retail_price > 0),
               accepted_at timestamptz NOT NULL,
               stored_at timestamptz NOT NULL DEFAULT now()
           )""",
        "CREATE INDEX IF NOT EXISTS orders_accepted_at ON orders (accepted_at)",
        # The outbox is the source of truth for what the warehouse still lacks: a row is
        # written in the same transaction as its order and deleted only after the
        # warehouse has committed it.
        """CREATE TABLE IF NOT EXISTS outbox (
               order_id varchar(64) PRIMARY KEY REFERENCES orders (order_id),
               accepted_at timestamptz NOT NULL
           )""",
        "CREATE INDEX IF NOT EXISTS outbox_accepted_at ON outbox (accepted_at)",
        """CREATE TABLE IF NOT EXISTS rejected_orders (
               id bigserial PRIMARY KEY,
               fingerprint char(64) NOT NULL UNIQUE,
               order_id varchar(64),
               payload text NOT NULL,
               reason text NOT NULL,
               rejected_at timestamptz NOT NULL DEFAULT now()
           )""",
    ]),
    # The store looks a rejection up by order_id: an order re-sent unchanged (a new accepted_at, so a new
    # message) is not rejected a second time (lambdas/core/store.py).
    (2, ["CREATE INDEX IF NOT EXISTS rejected_orders_order_id ON rejected_orders (order_id)"]),
]

# --------------------------------------------------------------------------- the warehouse's order rows
# An order as the warehouse holds it, column by column: the fact table, the sync's staging table and the
# benchmarks' target tables are all built from this one list, so they cannot drift apart.
ORDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("order_id", "varchar(64)"),
    ("customer_id", "bigint"),
    ("state", "char(2)"),
    ("pizza_type", "varchar(32)"),
    ("qty", "integer"),
    ("retail_price", "decimal(8, 2)"),
    ("accepted_at", "timestamptz"),
    ("stored_at", "timestamptz"),
)
BATCH_COLUMNS = tuple(name for name, _ in ORDER_COLUMNS)


def order_columns_ddl(*, loaded_at: bool) -> str:
    """orders_fact's column list and primary key, for a CREATE TABLE: the fact table's own as migration 1 made
    it (with loaded_at, the sync's stamp) or that of a table that must hold the same rows (the benchmarks'
    targets). Not a migration's: migration 1 keeps its own text."""
    columns = [f"{name} {kind} NOT NULL" + (" PRIMARY KEY" if name == "order_id" else "")
               for name, kind in ORDER_COLUMNS]
    if loaded_at:
        columns.append("loaded_at timestamptz NOT NULL")
    return "(\n    " + ",\n    ".join(columns) + ")"


# The sync's statements (Redshift and PostgreSQL alike; run_sync runs them in this order per batch).
# The batch table (orders_batch) is a temporary table: private to the session, gone with it, never vacuumed, no NOT NULL
# (a bad row fails at the merge into orders_fact, inside the batch's transaction).
BATCH_TABLE_DDL = ("CREATE TEMP TABLE IF NOT EXISTS orders_batch ("
             + ", ".join(f"{name} {kind}" for name, kind in ORDER_COLUMNS) + ")")
# TRUNCATE, not DELETE: deleted rows stay in a temporary table (autovacuum never visits one), so with
# DELETE the batch table grew by a batch per batch, each load and merge scanned all of it, and the inflated size
# turned the merge into a hash join over the whole fact table. On Redshift TRUNCATE commits the open
# transaction (the warehouse declares it: Capabilities.truncate_commits), so it runs before the batch's load.
BATCH_TABLE_CLEAR = "TRUNCATE orders_batch"
# Insert-if-absent keyed by order_id (no ON CONFLICT on Redshift): a batch loaded twice, or an order already
# there from a run that crashed after its warehouse commit, keeps its first loaded_at. A new order has no
# snapshot_at: no refresh has taken it yet (written out: the column's default is for the rows that predate
# the stamp, see TAKE_SNAPSHOT_SQL).
MERGE_SQL = (f"INSERT INTO orders_fact\n    ({', '.join(BATCH_COLUMNS)}, loaded_at, snapshot_at)\n"  # noqa: S608
             f"SELECT {', '.join('s.' + c for c in BATCH_COLUMNS)}, %s, NULL\n"
             "FROM orders_batch s\n"
             "LEFT JOIN orders_fact f ON f.order_id = s.order_id\n"
             "WHERE f.order_id IS NULL")
RECORD_RUN_SQL = "INSERT INTO sync_runs (started_at, finished_at, synced, pending) VALUES (%s, %s, %s, %s)"

# The reporting views as the first two migrations created them, frozen: an applied migration's SQL never changes.
# Each aggregated every fact row its REFRESH saw, and each REFRESH saw what had committed when it started, so
# under live traffic the two views held different orders (issue 15).
_VIEW_DDL_V1 = {
    "sales_by_state": """CREATE MATERIALIZED VIEW sales_by_state AS
           SELECT f.state, f.pizza_type,
                  SUM(f.qty) AS total_pizzas,
                  SUM(f.qty * f.retail_price) AS gross_sales,
                  CAST(SUM(f.qty * f.retail_price) AS decimal(20, 8)) / MAX(p.population) AS gross_sales_per_capita,
                  COUNT(DISTINCT f.customer_id) AS unique_customers
           FROM orders_fact f JOIN state_population p ON p.state = f.state
           GROUP BY f.state, f.pizza_type""",
    "state_sales": """CREATE MATERIALIZED VIEW state_sales AS
           SELECT f.state,
                  SUM(f.qty) AS total_pizzas,
                  SUM(f.qty * f.retail_price) AS gross_sales,
                  CAST(SUM(f.qty * f.retail_price) AS decimal(20, 8)) / MAX(p.population) AS gross_sales_per_capita,
                  COUNT(DISTINCT f.customer_id) AS unique_customers,
                  COUNT(*) AS orders
           FROM orders_fact f JOIN state_population p ON p.state = f.state
           GROUP BY f.state""",
}

# --------------------------------------------------------------------------- the views' snapshot
# Both views hold one snapshot of the fact table, whatever commits while they refresh. A refresh first stamps
# every fact row that no refresh has taken yet with its own time (TAKE_SNAPSHOT_SQL: one UPDATE, so exactly the
# rows committed when it ran), and the views aggregate only stamped rows. A row committed later stays unstamped
# (the sync inserts it with none), so it is outside both views however the refresh interleaves with the sync:
# on PostgreSQL, where both REFRESH ... CONCURRENTLY run in one READ COMMITTED transaction and each reads what
# has committed when it starts; on Redshift, where each REFRESH is a transaction of its own. No bound on
# loaded_at could do this: it is bound from the sync's clock before its batch commits, and batches commit out
# of that order. A stamp is never rewritten, so the rows of a snapshot never change after it.
# Each view carries the snapshot it holds (snapshot_at: the newest stamp among its rows), and "orders not in the
# views" counts the fact rows beyond it (NOT_IN_VIEWS_SQL, reporting.views_freshness): exact on both warehouses,
# in the instant too on Redshift between the stamp's commit and the REFRESH that takes those rows in.
# The rows already in the warehouse when the stamp came in (migration 3) got 1970-01-01 00:00:00+00 by default,
# in the views from then on.
TAKE_SNAPSHOT_SQL = "UPDATE orders_fact SET snapshot_at = %s WHERE snapshot_at IS NULL"

# The reporting views as migration 3 created them, frozen.
_VIEW_DDL_V3 = {
    # Per state and pizza type. Per capita divides by the state's population.
    "sales_by_state": """CREATE MATERIALIZED VIEW sales_by_state AS
           SELECT f.state, f.pizza_type,
                  SUM(f.qty) AS total_pizzas,
                  SUM(f.qty * f.retail_price) AS gross_sales,
                  CAST(SUM(f.qty * f.retail_price) AS decimal(20, 8)) / MAX(p.population) AS gross_sales_per_capita,
                  COUNT(DISTINCT f.customer_id) AS unique_customers,
                  MAX(f.snapshot_at) AS snapshot_at
           FROM orders_fact f JOIN state_population p ON p.state = f.state
           WHERE f.snapshot_at IS NOT NULL
           GROUP BY f.state, f.pizza_type""",
    # Per-state totals are aggregated per state, never summed from the per-type rows:
    # a customer who bought two types is one unique customer, not two. `orders` is how many orders it holds.
    "state_sales": """CREATE MATERIALIZED VIEW state_sales AS
           SELECT f.state,
                  SUM(f.qty) AS total_pizzas,
                  SUM(f.qty * f.retail_price) AS gross_sales,
                  CAST(SUM(f.qty * f.retail_price) AS decimal(20, 8)) / MAX(p.population) AS gross_sales_per_capita,
                  COUNT(DISTINCT f.customer_id) AS unique_customers,
                  COUNT(*) AS orders,
                  MAX(f.snapshot_at) AS snapshot_at
           FROM orders_fact f JOIN state_population p ON p.state = f.state
           WHERE f.snapshot_at IS NOT NULL
           GROUP BY f.state""",
}
# The reporting views today, by name: as the last migration that changed them created them (a migration that
# changes a view freezes its own _VIEW_DDL_V<n> and points this at it). On Redshift they are created again as
# their refresh user (redshift_access), since only a view's owner may refresh it and Redshift cannot hand one over.
VIEW_DDL = dict(_VIEW_DDL_V3)
RECORD_REFRESH_SQL = "INSERT INTO view_refreshes (refreshed_at) VALUES (%s)"
# The fact rows the views do not hold: never stamped, or stamped after state_sales' snapshot (Redshift, while the
# REFRESH that takes them in has still to run). One statement, so one snapshot of the fact table and the view.
NOT_IN_VIEWS_SQL = ("SELECT count(*) FROM orders_fact WHERE snapshot_at IS NULL OR snapshot_at > "
                    "(SELECT COALESCE(MAX(snapshot_at), CAST('1900-01-01 00:00:00+00' AS timestamptz)) "
                    "FROM state_sales)")


WAREHOUSE_MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE IF NOT EXISTS state_population (
               state char(2) PRIMARY KEY,
               state_name varchar(64) NOT NULL,
               population bigint NOT NULL
           )""",
        ("CREATE TABLE IF NOT EXISTS orders_fact (\n"
         "    order_id varchar(64) NOT NULL PRIMARY KEY,\n"
         "    customer_id bigint NOT NULL,\n"
         "    state char(2) NOT NULL,\n"
         "    pizza_type varchar(32) NOT NULL,\n"
         "    qty integer NOT NULL,\n"
         "    retail_price decimal(8, 2) NOT NULL,\n"
         "    accepted_at timestamptz NOT NULL,\n"
         "    stored_at timestamptz NOT NULL,\n"
         "    loaded_at timestamptz NOT NULL)"),
        """CREATE TABLE IF NOT EXISTS sync_runs (
               started_at timestamptz NOT NULL,
               finished_at timestamptz NOT NULL,
               synced integer NOT NULL,
               pending integer NOT NULL
           )""",
        _VIEW_DDL_V1["sales_by_state"],
        _VIEW_DDL_V1["state_sales"],
    ]),
    # Reports say how fresh the views are: state_sales counts its orders, refresh records when it ran.
    (2, [
        "DROP MATERIALIZED VIEW IF EXISTS state_sales",
        _VIEW_DDL_V1["state_sales"],
        """CREATE TABLE IF NOT EXISTS view_refreshes (
               refreshed_at timestamptz NOT NULL
           )""",
    ]),
    # Both views from one snapshot (see TAKE_SNAPSHOT_SQL). The rows already loaded count as taken (the default;
    # PostgreSQL stores it once, Redshift fills the new column), so the views created again hold them all.
    (3, [
        "ALTER TABLE orders_fact ADD COLUMN snapshot_at timestamptz DEFAULT '1970-01-01 00:00:00+00'",
        "DROP MATERIALIZED VIEW IF EXISTS sales_by_state",
        "DROP MATERIALIZED VIEW IF EXISTS state_sales",
        _VIEW_DDL_V3["sales_by_state"],
        _VIEW_DDL_V3["state_sales"],
    ]),
]

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer NOT NULL PRIMARY KEY,
    applied_at timestamptz NOT NULL
)"""
# applied_at is bound, computed in Python: Redshift lists CURRENT_TIMESTAMP (and NOW()) among its leader-node-only
# functions, which fail in a statement that writes a user table, and PostgreSQL lacks GETDATE()/SYSDATE.
RECORD_MIGRATION_SQL = "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)"

MATERIALIZED_VIEWS = ("sales_by_state", "state_sales")
# Written out, not formatted: no statement is ever built from a string at run time. Each runs after
# TAKE_SNAPSHOT_SQL (reporting.refresh_views), so both views aggregate the same stamped rows.
# Redshift: readers keep seeing the old contents while a refresh runs (snapshot isolation), and it knows
# no CONCURRENTLY. PostgreSQL: a plain refresh locks readers out for its whole run (seconds at millions of
# orders), CONCURRENTLY does not; it needs each view's unique index (WAREHOUSE_INDEXES_POSTGRES).
REFRESH_STATEMENTS = ("REFRESH MATERIALIZED VIEW sales_by_state", "REFRESH MATERIALIZED VIEW state_sales")
REFRESH_STATEMENTS_POSTGRES = ("REFRESH MATERIALIZED VIEW CONCURRENTLY sales_by_state",
                               "REFRESH MATERIALIZED VIEW CONCURRENTLY state_sales")

def state_populations() -> list[tuple[str, str, int]]:
    """The 2020 Census resident population of the 50 states and DC, shipped as package data."""
    text = resources.files("lambdas.core").joinpath("data/us_state_population_2020.csv").read_text()
    return [(r["state"], r["state_name"], int(r["population"])) for r in csv.DictReader(text.splitlines())]


def migrate(conn: Any, migrations: list[tuple[int, list[str]]]) -> list[int]:
    """Applies pending migrations; returns the versions applied now (empty when up to date)."""
    with conn.cursor() as cur:
        cur.execute(MIGRATIONS_TABLE)
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
    conn.commit()
    applied = []
    for version, statements in migrations:
        if version in done:
            continue
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            cur.execute(RECORD_MIGRATION_SQL, (version, datetime.now(UTC)))
        conn.commit()
        applied.append(version)
    return applied


def load_state_population(conn: Any) -> int:
    """Replaces the reference population in one transaction (idempotent)."""
    rows = state_populations()
    placeholders = ", ".join(["(%s, %s, %s)"] * len(rows))
    with conn.cursor() as cur:
        cur.execute("DELETE FROM state_population")
        cur.execute(
            "INSERT INTO state_population (state, state_name, population) VALUES " + placeholders,  # noqa: S608 - placeholders only
            [value for row in rows for value in row],
        )
    conn.commit()
    return len(rows)

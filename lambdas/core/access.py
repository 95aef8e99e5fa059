"""Who may do what in each database, and the physical design that goes with it: the functions' users and their
grants (the OLTP database; the local PostgreSQL warehouse; Redshift, whose users are the functions' IAM roles),
PostgreSQL's indexes and Redshift's distribution and sort keys. Re-applied after every migrate by the ops
function (OLTP_ACCESS) and by each warehouse's `grant` (lambdas/core/warehouse/), so what a release adds here
reaches a deployment; everything here is idempotent.

Imports: lambdas.core.schema (the views, re-created as their owner). Imported by the ops function and the
warehouses.
"""

from __future__ import annotations

import re
from typing import Any

from lambdas.core.schema import VIEW_DDL

# --------------------------------------------------------------------------- the functions' users and grants
# Each function connects as its own database user with only the grants it needs; ops, which runs
# the migrations, owns everything. Re-applied after every migrate (GRANT is idempotent), so a grant
# added here reaches an existing deployment. The users are created here where they are missing (on
# RDS, by the master user, and given rds_iam so they log in with IAM tokens); the local target
# creates them beforehand with passwords (txpipe_cli/local/provision.py).
ENSURE_USERS = """DO $$
DECLARE
    u text;
BEGIN
    FOREACH u IN ARRAY ARRAY['txpipe_ingest', 'txpipe_store', 'txpipe_sync', 'txpipe_refresh', 'txpipe_esm'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = u) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', u);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
            EXECUTE format('GRANT rds_iam TO %I', u);
        END IF;
    END LOOP;
END $$"""
OLTP_ACCESS = (
    ENSURE_USERS,
    # store: look up customers, insert orders (and read them back for a re-sent order_id), the outbox, rejections.
    "GRANT SELECT ON customers TO txpipe_store",
    "GRANT SELECT, INSERT ON orders, outbox, rejected_orders TO txpipe_store",
    "GRANT USAGE ON SEQUENCE rejected_orders_id_seq TO txpipe_store",
    # sync: read orders and customers, claim (lock) and delete outbox rows.
    "GRANT SELECT ON orders, customers TO txpipe_sync",
    "GRANT SELECT, UPDATE, DELETE ON outbox TO txpipe_sync",
)
# PostgreSQL, the local warehouse. (Redshift's users and grants come with the AWS path's IAM login.)
WAREHOUSE_ACCESS_POSTGRES = (
    ENSURE_USERS,
    # sync: insert what the fact table lacks (reading it to tell), record its runs.
    "GRANT SELECT, INSERT ON orders_fact TO txpipe_sync",
    "GRANT INSERT ON sync_runs TO txpipe_sync",
    # refresh: only an owner may refresh a materialized view (PostgreSQL before 17), so the views are its.
    # A new owner needs CREATE on the schema at the moment of the hand-over, and not after it. It stamps the
    # fact rows it takes into the views (TAKE_SNAPSHOT_SQL): that one column, nothing else of them.
    "GRANT SELECT ON orders_fact, state_population TO txpipe_refresh",
    "GRANT UPDATE (snapshot_at) ON orders_fact TO txpipe_refresh",
    "GRANT INSERT ON view_refreshes TO txpipe_refresh",
    "GRANT CREATE ON SCHEMA public TO txpipe_refresh",
    "ALTER MATERIALIZED VIEW sales_by_state OWNER TO txpipe_refresh",
    "ALTER MATERIALIZED VIEW state_sales OWNER TO txpipe_refresh",
    "REVOKE CREATE ON SCHEMA public FROM txpipe_refresh",
)


# Redshift: the sync and refresh functions log in with IAM as IAMR:<their role's name> (warehouse/redshift.py).
# redshift_access reads the catalog (a query of catalog tables alone runs on the leader node): a user by name in
# pg_user, and a view's owner by joining pg_user on pg_class.relowner, as AWS's own catalog queries do (not with
# pg_get_userbyid, a PostgreSQL function Redshift does not document). It returns to the admin with SET SESSION
# AUTHORIZATION DEFAULT, the form Redshift documents (RESET SESSION AUTHORIZATION is PostgreSQL's only).
USER_EXISTS_SQL = "SELECT count(*) FROM pg_user WHERE usename = %s"
VIEW_OWNER_SQL = "SELECT u.usename FROM pg_class c JOIN pg_user u ON u.usesysid = c.relowner WHERE c.relname = %s"
SESSION_AUTHORIZATION_DEFAULT = "SET SESSION AUTHORIZATION DEFAULT"
_REDSHIFT_USER = re.compile(r"^[A-Za-z0-9_:@.+=-]{1,127}$")


def _quoted_user(name: str) -> str:
    """A Redshift user name as a quoted identifier. Identifiers cannot be bound as parameters; this one
    comes from the stack (IAMR:<role name>) and is checked against what IAM allows in a role name."""
    if not _REDSHIFT_USER.fullmatch(name):
        raise ValueError(f"not a database user name txpipe creates: {name!r}")
    return f'"{name}"'


def redshift_access(conn: Any, sync_user: str, refresh_user: str) -> list[str]:
    """Creates the functions' IAM users where missing, grants each what it needs, and makes the refresh
    user the owner of the reporting views (only an owner may refresh one: the views are created again as
    it, by the admin, which may act as any user). Returns the statements it ran."""
    sync, refresh = _quoted_user(sync_user), _quoted_user(refresh_user)
    ran: list[str] = []
    with conn.cursor() as cur:
        def run(statement: str) -> None:
            cur.execute(statement)
            ran.append(statement)

        for user, quoted in ((sync_user, sync), (refresh_user, refresh)):
            cur.execute(USER_EXISTS_SQL, (user,))
            if not cur.fetchone()[0]:
                run(f"CREATE USER {quoted} PASSWORD DISABLE")
        run(f"GRANT SELECT, INSERT ON orders_fact TO {sync}")
        run(f"GRANT INSERT ON sync_runs TO {sync}")
        run(f"GRANT SELECT ON orders_fact, state_population TO {refresh}")
        run(f"GRANT UPDATE (snapshot_at) ON orders_fact TO {refresh}")
        run(f"GRANT INSERT ON view_refreshes TO {refresh}")
        for view, ddl in VIEW_DDL.items():
            cur.execute(VIEW_OWNER_SQL, (view,))
            owner = cur.fetchone()
            if owner and owner[0] == refresh_user:
                continue
            run(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
            run(f"SET SESSION AUTHORIZATION {refresh}")
            run(ddl)
            run(SESSION_AUTHORIZATION_DEFAULT)
    conn.commit()
    return ran


def apply_statements(conn: Any, statements: tuple[str, ...]) -> None:
    """Runs idempotent statements (users and grants, indexes) in one transaction."""
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.commit()


# --------------------------------------------------------------------------- physical design
# Re-applied after every migrate (idempotent), per warehouse kind, so a deployment gets what a later
# release adds. PostgreSQL: indexes for the windowed reads (the SLA report's window of accepted_at, the
# last sync), for the fact rows the views lack (the refresh's stamp and the reports' count of them read those
# few rows, not the whole table) and the unique indexes a concurrent refresh needs.
WAREHOUSE_INDEXES_POSTGRES = (
    "CREATE INDEX IF NOT EXISTS orders_fact_accepted_at ON orders_fact (accepted_at)",
    "CREATE INDEX IF NOT EXISTS orders_fact_snapshot_at ON orders_fact (snapshot_at)",
    "CREATE INDEX IF NOT EXISTS sync_runs_finished_at ON sync_runs (finished_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS sales_by_state_key ON sales_by_state (state, pizza_type)",
    "CREATE UNIQUE INDEX IF NOT EXISTS state_sales_key ON state_sales (state)",
)
# Redshift has no indexes: it skips blocks by the sort key's zone maps and joins where rows sit. orders_fact
# is distributed by customer (the views count distinct customers per state on each node; a sync batch,
# small, is what moves to meet it) and sorted by accepted_at (the SLA report's window reads recent blocks
# only); sync_runs by finished_at (the last sync). (table, distribution key or None, sort key)
REDSHIFT_KEYS = (("orders_fact", "customer_id", "accepted_at"), ("sync_runs", None, "finished_at"))
_REDSHIFT_KEY_SQL = {
    ("orders_fact", "dist"): "ALTER TABLE orders_fact ALTER DISTSTYLE KEY DISTKEY customer_id",
    ("orders_fact", "sort"): "ALTER TABLE orders_fact ALTER COMPOUND SORTKEY (accepted_at)",
    ("sync_runs", "sort"): "ALTER TABLE sync_runs ALTER COMPOUND SORTKEY (finished_at)",
}


def redshift_keys(conn: Any) -> list[str]:
    """Gives the Redshift tables the keys of REDSHIFT_KEYS where they differ (read from pg_table_def: the
    distribution key column, and the first sort key column). Returns the statements it ran. Each ALTER
    runs on its own (Redshift reorganises the rows in the background)."""
    ran: list[str] = []
    for table, dist, sort in REDSHIFT_KEYS:
        with conn.cursor() as cur:
            cur.execute('SELECT "column", distkey, sortkey FROM pg_table_def WHERE schemaname = %s AND tablename = %s',
                        ("public", table))
            columns = cur.fetchall()
        have_dist = next((c for c, is_dist, _ in columns if is_dist), None)
        have_sort = next((c for c, _, position in columns if position == 1), None)
        for kind, wanted, have in (("dist", dist, have_dist), ("sort", sort, have_sort)):
            if wanted is not None and have != wanted:
                with conn.cursor() as cur:
                    cur.execute(_REDSHIFT_KEY_SQL[(table, kind)])
                ran.append(_REDSHIFT_KEY_SQL[(table, kind)])
        conn.commit()
    return ran

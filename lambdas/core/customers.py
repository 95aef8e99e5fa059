"""Customers (id -> state) in the OLTP database: the join that gives each order its state.

A load of any size is all or nothing, in three steps the ops function runs one call each (so that
neither a Lambda payload nor the CLI's memory bounds it): `add_rows` a batch at a time into
customers_load under a load id, then `commit_load` in one transaction, or `abort_load`. A commit that
would move an existing customer to another state is refused, naming some, unless replace is asked.

Moving a customer never rewrites history: the sync gives each order the state its customer has when it
loads the order into the warehouse (orders_fact.state, what the reports group by), and the warehouse keeps
it. So a moved customer's orders already synced stay reported where they were placed; the orders not yet
synced (normally a few minutes' worth) and every later one are reported in the new state.
"""

from __future__ import annotations

import re
from typing import Any

# UNLOGGED: a load in progress need not survive a crash (the CLI starts it again); it is written fast.
LOAD_DDL = """CREATE UNLOGGED TABLE IF NOT EXISTS customers_load (
    load_id varchar(64) NOT NULL,
    customer_id bigint NOT NULL,
    state char(2) NOT NULL,
    name text,
    PRIMARY KEY (load_id, customer_id))"""


def add_rows(conn: Any, load_id: str, rows: list[list[Any]], first: bool = False) -> int:
    """Adds a batch to the load (the first batch clears what an abandoned load of the same id left)."""
    import psycopg2
    from psycopg2.extras import execute_values

    with conn.cursor() as cur:
        cur.execute(LOAD_DDL)
        if first:
            cur.execute("DELETE FROM customers_load WHERE load_id = %s", (load_id,))
        try:
            execute_values(cur, "INSERT INTO customers_load (load_id, customer_id, state, name) VALUES %s",
                           [(load_id, int(r[0]), str(r[1]), r[2] if len(r) > 2 else None) for r in rows],
                           page_size=1000)
        except psycopg2.errors.UniqueViolation as exc:
            conn.rollback()
            # DETAIL reads "Key (load_id, customer_id)=(<load>, <id>) already exists."
            found = re.search(r"(\d+)\) already exists", getattr(exc.diag, "message_detail", "") or "")
            which = f"customer_id {found.group(1)}" if found else "a customer_id"
            raise ValueError(f"{which} appears twice in the input; nothing was loaded") from None
    conn.commit()
    return len(rows)


def commit_load(conn: Any, load_id: str, *, replace: bool) -> dict[str, Any]:
    """Applies the whole load in one transaction: new customers, names, and (with replace) moved states; returns
    how many were loaded, new, updated (their state or name changed) and moved (moving changes no order already
    in the warehouse). The rest, loaded - new - updated, were already as given and are left untouched."""
    with conn.cursor() as cur:
        cur.execute("""SELECT count(*) FROM customers_load l JOIN customers c ON c.customer_id = l.customer_id
                       WHERE l.load_id = %s AND c.state <> l.state""", (load_id,))
        count = cur.fetchone()[0]
        if count and not replace:
            cur.execute(
                """SELECT l.customer_id, c.state, l.state FROM customers_load l
                   JOIN customers c ON c.customer_id = l.customer_id
                   WHERE l.load_id = %s AND c.state <> l.state ORDER BY l.customer_id LIMIT 5""", (load_id,))
            examples = ", ".join(f"{cid} {old}->{new}" for cid, old, new in cur.fetchall())
            cur.execute("DELETE FROM customers_load WHERE load_id = %s", (load_id,))
            conn.commit()
            raise ValueError(f"{count} existing {'customer' if count == 1 else 'customers'} "
                             f"would move to another state (e.g. {examples}); "
                             "nothing was changed: pass --replace to move them (their orders already in the "
                             "warehouse stay reported in the old state)")
        cur.execute("SELECT count(*) FROM customers_load WHERE load_id = %s", (load_id,))
        staged = cur.fetchone()[0]
        cur.execute("""SELECT count(*), count(*) FILTER (WHERE (c.state, c.name) IS DISTINCT FROM (l.state, l.name))
                       FROM customers_load l JOIN customers c ON c.customer_id = l.customer_id
                       WHERE l.load_id = %s""", (load_id,))
        existing, changed = cur.fetchone()
        cur.execute(  # a customer already as given is not written again (no new row version, no "updated")
            """INSERT INTO customers (customer_id, state, name)
               SELECT customer_id, state, name FROM customers_load WHERE load_id = %s
               ON CONFLICT (customer_id) DO UPDATE SET state = EXCLUDED.state, name = EXCLUDED.name
               WHERE (customers.state, customers.name) IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.name)""",
            (load_id,))
        cur.execute("DELETE FROM customers_load WHERE load_id = %s", (load_id,))
    conn.commit()
    return {"loaded": int(staged), "new": int(staged - existing), "updated": int(changed),
            "moved": int(count)}


def abort_load(conn: Any, load_id: str) -> None:
    with conn.cursor() as cur:
        cur.execute(LOAD_DDL)
        cur.execute("DELETE FROM customers_load WHERE load_id = %s", (load_id,))
    conn.commit()

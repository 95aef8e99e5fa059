"""Customers (id -> state) in the OLTP database: the join that gives each order its state."""

from __future__ import annotations

from typing import Any


def upsert_customers(conn: Any, rows: list[list[Any]]) -> int:
    """Inserts or updates [customer_id, state, name] rows in one transaction; returns the row count."""
    from psycopg2.extras import execute_values

    if not rows:
        return 0
    with conn.cursor() as cur:
        execute_values(
            cur,
            """INSERT INTO customers (customer_id, state, name) VALUES %s
               ON CONFLICT (customer_id) DO UPDATE SET state = EXCLUDED.state, name = EXCLUDED.name""",
            [(int(r[0]), str(r[1]), r[2] if len(r) > 2 else None) for r in rows],
            page_size=1000,
        )
    conn.commit()
    return len(rows)

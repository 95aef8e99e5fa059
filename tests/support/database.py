"""One query against a PostgreSQL database by its endpoint: the rows it returns, on a connection of its own.

The one `sql()` helper: the e2e tests' Cli.sql (a local deployment's databases), the Redshift-path tests' direct
reads (the server behind the shim) and the fault harness's Harness.sql (benchmarks/faults.py) all go through
`query`. Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

from typing import Any

from lambdas.core.db import Endpoint, connect_postgres


def query(endpoint: Endpoint, sql: str, params: tuple[Any, ...] = (), **connect: Any) -> list[tuple[Any, ...]]:
    """Runs `sql` with `params` on a new connection (connect_postgres's keywords in `connect`: autocommit,
    application_name), closed afterwards; the rows, or [] for a statement that returns none."""
    conn = connect_postgres(endpoint, **connect)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()

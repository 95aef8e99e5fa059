"""The local warehouse: PostgreSQL through psycopg2, the stand-in for Redshift.

Built from TXPIPE_WAREHOUSE_HOST/_PORT/_DB/_SECRET; its users are the fixed txpipe_* roles (access.ENSURE_USERS),
granted access.WAREHOUSE_ACCESS_POSTGRES after its indexes (access.WAREHOUSE_INDEXES_POSTGRES: the windowed reads'
and the unique ones a concurrent refresh needs); its views are refreshed CONCURRENTLY in one transaction with the
snapshot's stamp, so readers are never locked out; a lost connection is psycopg2's OperationalError or
InterfaceError.

Its bulk load is COPY FROM STDIN in the text format, which Redshift does not have (its COPY reads
S3). It takes rows as PostgreSQL's own text output (Capabilities.copy_text), so run_sync claims
them as text, and in the pipelined path streams them with COPY TO STDOUT from the OLTP database:
those bytes go into the batch table as they are, with no Python object per value. Typed rows work too
(they are formatted here), which is what a caller without a text claim hands it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lambdas.core import access, schema
from lambdas.core.db import Endpoint, connect_postgres
from lambdas.core.warehouse import BATCH_COLUMNS, BatchFile, Capabilities, CopyRows, Warehouse

COPY_SQL = f"COPY orders_batch ({', '.join(BATCH_COLUMNS)}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    """One value in COPY's text format: NULL is \\N; backslash, tab, newline and CR are escaped."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.translate(_COPY_ESCAPES)


def copy_text(rows: Sequence[Sequence[Any]]) -> str:
    """Rows in COPY's text format, one line each."""
    separators = len(BATCH_COLUMNS) - 1
    lines = []
    for row in rows:
        try:
            line = "\t".join(row)  # the common case: text rows with nothing to escape
        except TypeError:  # typed rows, or a NULL
            line = None
        if line is None or line.count("\t") != separators or "\\" in line or "\n" in line or "\r" in line:
            line = "\t".join(_copy_value(v) for v in row)
        lines.append(line)
    lines.append("")
    return "\n".join(lines)


class PostgresWarehouse(Warehouse):
    """PostgreSQL: psycopg2, COPY FROM STDIN into the batch table, TRUNCATE inside the batch's transaction."""

    kind = "postgres"
    capabilities = Capabilities(copy_text=True, truncate_commits=False, bills_by_wake=False, refresh_commits=False)
    # Redshift knows no CONCURRENTLY; here a plain refresh would lock readers out for its whole run (seconds at
    # millions of orders). It needs each view's unique index, made in `grant` (access.WAREHOUSE_INDEXES_POSTGRES).
    refresh_statements = schema.REFRESH_STATEMENTS_POSTGRES

    def __init__(self, endpoint: Endpoint | None = None, *, application_name: str = "txpipe-warehouse") -> None:
        self.endpoint = endpoint  # None: a loader only (the caller brings its own connection)
        self.application_name = application_name

    @classmethod
    def from_env(cls, variables: Mapping[str, str]) -> PostgresWarehouse:
        return cls(Endpoint.from_env("warehouse", dict(variables)))

    def connect(self) -> Any:
        if self.endpoint is None:
            raise RuntimeError("this PostgresWarehouse has no endpoint to connect to")
        return connect_postgres(self.endpoint, application_name=self.application_name)

    def grant(self, conn: Any, variables: Mapping[str, str]) -> None:
        """Its indexes, then the function users and their grants (the views handed to txpipe_refresh, which alone
        may refresh them); the users are the fixed txpipe_* roles, so `variables` names none."""
        access.apply_statements(conn, access.WAREHOUSE_INDEXES_POSTGRES)
        access.apply_statements(conn, access.WAREHOUSE_ACCESS_POSTGRES)

    def load_batch(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> BatchFile | None:
        """COPY FROM STDIN: CopyRows as they came from the OLTP database, other rows formatted as COPY text."""
        data = rows.data if isinstance(rows, CopyRows) else copy_text(rows).encode()
        cur.copy_expert(COPY_SQL, io.BytesIO(data), size=1 << 20)
        return None

    @staticmethod
    def is_connection_error(exc: BaseException) -> bool:
        """psycopg2's OperationalError (the server went away, a connect failed) or InterfaceError (a closed
        connection used); psycopg2 is loaded whenever one of its connections raised."""
        psycopg2 = sys.modules.get("psycopg2")
        return psycopg2 is not None and isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)

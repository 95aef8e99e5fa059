"""The warehouse as a complete destination, as dlt's: everything txpipe asks of a warehouse, one class per kind.

A warehouse is PostgreSQL or "PostgreSQL with differences" (Redshift). The SQL they share lives in schema.py
(the migrations, the batch table and the merge, the views' snapshot and REFRESH statements) and access.py (the
users, grants, indexes and keys); each
`Warehouse` class decides which of it runs and in what transactions, and owns what differs:

- `from_env(variables)`: the warehouse built from a function's environment (its endpoint, and whatever else it
  reads; `settings` lists those variables, and a warm function reuses one object per distinct set of values);
- `connect()`: a DB-API connection with autocommit off (psycopg2, or redshift-connector);
- `capabilities`: what the code driving it must know, as data (`Capabilities`);
- `migrate(conn)`: the versioned schema migrations (schema.WAREHOUSE_MIGRATIONS, shared);
- `grant(conn, variables)`: re-applied after every migrate: its function users, what each may do, and the
  physical design that goes with them (PostgreSQL's indexes, Redshift's keys);
- `load_batch(cursor, rows)` and `delete_batch_file(batch_file)`: how run_sync's batch gets into the batch
  table, `orders_batch` (PostgreSQL: COPY FROM STDIN; Redshift: gzipped CSV to S3 and COPY with an IAM role, or
  multi-row INSERTs without a bucket), and how the file the load left outside the warehouse is removed once the
  warehouse has committed (nothing to remove: `load_batch` returns None);
- `refresh(conn)`: both reporting views from one snapshot of the fact table (the stamp, each REFRESH in
  `refresh_statements`, the record), in the transactions its capabilities say;
- `is_connection_error(exc)`: whether a driver error means the connection is gone (transient: retried once
  on a fresh connection, env.fresh_connections_on_error) rather than a statement that failed (terminal).

Imports: `lambdas.core` only. Imported by env.py, sync.py and the ops and refresh functions, and by the CLI
for a kind's capabilities (`warehouse_class`), never a kind's module by name.

run_sync (sync.py) drives every warehouse alike: per batch, clear the batch table, `load_batch` the claimed rows,
merge, commit, then `delete_batch_file`. The ops function's migrate calls `migrate` and `grant`; the refresh function
calls `refresh`. None of them, nor env.py, names a kind: they find the class in `WAREHOUSES` by
TXPIPE_WAREHOUSE_KIND (`warehouse_class`), importing its module on first use, so the local target never
imports Redshift's module, nor redshift-connector.

Adding a warehouse (Snowflake, DuckDB, ...): one module, one registry line, the template.

1. One module, lambdas/core/warehouse/<kind>.py, with one class (the template below). Its SQL goes in schema.py
   (or access.py, for its users and grants) if it is statements the other warehouses share or that the grammar
   tests should see; its driver is imported
   inside `connect`, never at the module's top (a function that does not use it must not pay for it).
2. One registry line in `WAREHOUSES` below: "<kind>": "lambdas.core.warehouse.<kind>:<Class>" (or, from a
   plugin or a test, `register("<kind>", Class)`).
3. The deployment sets TXPIPE_WAREHOUSE_KIND=<kind> and the variables its `from_env` reads. Nothing else
   changes: env, the sync, ops and refresh functions and the CLI reach it through this interface
   (tests/unit/test_warehouse_registry.py shows it with a warehouse defined in the test).

    class ExampleWarehouse(Warehouse):  # its docstring: the driver, its bulk load, what differs from PostgreSQL
        kind = "example"
        capabilities = Capabilities(copy_text=False, truncate_commits=False, bills_by_wake=False,
                                    refresh_commits=False)
        settings = (*ENDPOINT_SETTINGS, "TXPIPE_WAREHOUSE_EXAMPLE_OPTION")  # every variable from_env reads

        def __init__(self, endpoint: Endpoint | None = None, *, option: str = "") -> None:
            self.endpoint, self.option = endpoint, option  # None: a loader only (run_sync's caller connects)

        @classmethod
        def from_env(cls, variables: Mapping[str, str]) -> ExampleWarehouse:
            # Refuse a bad setting here, with the variable's name: it is checked before anything connects.
            return cls(Endpoint.from_env("warehouse", dict(variables)),
                       option=variables.get("TXPIPE_WAREHOUSE_EXAMPLE_OPTION", ""))

        def connect(self) -> Any:
            import exampledb  # the driver, lazily: see step 1

            conn = exampledb.connect(...)  # the endpoint's host, port, database and secret (db.read_secret)
            conn.autocommit = False
            return conn

        def grant(self, conn: Any, variables: Mapping[str, str]) -> None:
            access.apply_statements(conn, access.WAREHOUSE_ACCESS_EXAMPLE)  # its users and their grants

        def load_batch(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> BatchFile | None:
            ...  # fill orders_batch with rows (BATCH_COLUMNS, in order) in the open transaction, its fastest way
            return None

        @staticmethod
        def is_connection_error(exc: BaseException) -> bool:
            driver = sys.modules.get("exampledb")  # not loaded: it made no connection to lose
            return driver is not None and isinstance(exc, driver.OperationalError)  # "the connection is gone"

    `migrate`, `refresh` (with `refresh_statements`) and `delete_batch_file` are inherited: override what differs only.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, overload

from lambdas.core import schema
from lambdas.core.reporting import refresh_views
from lambdas.core.schema import BATCH_COLUMNS

__all__ = ["DEFAULT_KIND", "ENDPOINT_SETTINGS", "BATCH_COLUMNS", "WAREHOUSES", "Capabilities", "CopyRows", "BatchFile",
           "Warehouse", "is_connection_error", "register", "warehouse_class"]


@dataclass(frozen=True)
class Capabilities:
    """What the code driving a warehouse relies on (dlt's DestinationCapabilitiesContext, in small)."""

    # load_batch takes rows as PostgreSQL's COPY text (tuples of text, or CopyRows straight from the OLTP
    # database's COPY TO STDOUT), so run_sync claims them as text and parses nothing. Otherwise typed rows
    # (int, Decimal, aware datetime), as psycopg2 returns them.
    copy_text: bool
    # TRUNCATE commits the open transaction (Redshift). run_sync then commits the cleared batch table itself, so
    # the batch's load and merge are one transaction that starts after it, on every warehouse alike.
    truncate_commits: bool
    # Each wake is billed (Redshift Serverless: at least 60 s of its base capacity per query that wakes it). A
    # run that claims nothing then never connects to it, and records no run in its sync_runs: there, sync_runs
    # lists the runs that moved orders. A warehouse that does not (PostgreSQL) records every run. The CLI says
    # which its last recorded run is from this (txpipe_cli/commands/warehouse.py, last_sync_label).
    bills_by_wake: bool
    # Each REFRESH MATERIALIZED VIEW runs as a transaction of its own (Redshift). `refresh` then commits the
    # snapshot's stamp before the first, so each REFRESH sees it, and each statement as it runs. Otherwise the
    # stamp, the refreshes and the record are one transaction: readers see the old views, and the old count of
    # what they lack, until it commits (PostgreSQL, which refreshes CONCURRENTLY inside it).
    refresh_commits: bool


@dataclass(frozen=True)
class BatchFile:
    """A copy of one batch that load_batch left outside the warehouse (an S3 object), for `delete_batch_file`."""

    uri: str


# The variables of a warehouse endpoint (db.Endpoint.from_env("warehouse", ...)).
ENDPOINT_SETTINGS = ("TXPIPE_WAREHOUSE_HOST", "TXPIPE_WAREHOUSE_PORT", "TXPIPE_WAREHOUSE_DB", "TXPIPE_WAREHOUSE_SECRET")


class Warehouse(ABC):
    """One kind of warehouse, complete: built from the environment, connected to, migrated, granted, loaded,
    refreshed, and its errors told apart. Only what differs is abstract; the rest runs schema.py's shared SQL."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # Every variable from_env reads: a warm function builds one warehouse per distinct set of their values.
    settings: ClassVar[tuple[str, ...]] = ENDPOINT_SETTINGS
    # The views' REFRESH statements, in order (schema.py's); `refresh` runs them after the snapshot's stamp.
    refresh_statements: ClassVar[tuple[str, ...]] = schema.REFRESH_STATEMENTS

    @classmethod
    @abstractmethod
    def from_env(cls, variables: Mapping[str, str]) -> Warehouse:
        """The warehouse a function's environment describes; a missing or unsafe setting is refused here
        (RuntimeError naming the variable), before anything connects."""

    @abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection to the warehouse, autocommit off."""

    def migrate(self, conn: Any) -> list[int]:
        """Applies the warehouse migrations not yet applied, each in its own transaction; returns their versions."""
        return schema.migrate(conn, schema.WAREHOUSE_MIGRATIONS)

    @abstractmethod
    def grant(self, conn: Any, variables: Mapping[str, str]) -> None:
        """Re-applied after every migrate (idempotent, so what a release adds reaches a deployment): the
        functions' users on this warehouse, what each may do, and the physical design that goes with them.
        `variables`: the ops function's environment (where the deployment names the users, if it does)."""

    @abstractmethod
    def load_batch(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> BatchFile | None:
        """Fills the (cleared) orders_batch with `rows` (BATCH_COLUMNS, in order) on `cur`, inside the batch's
        open transaction. Returns what it left outside the warehouse, if anything."""

    def delete_batch_file(self, batch_file: BatchFile) -> None:  # noqa: B027 - a no-op unless a load leaves a file
        """Removes a batch's outside copy; run_sync calls it once the warehouse has committed that batch."""

    def refresh(self, conn: Any) -> list[str]:
        """Both reporting views from one snapshot of the fact table (reporting.refresh_views: the stamp, then
        `refresh_statements`, then the record), in the transactions Capabilities.refresh_commits says. Returns
        the views refreshed."""
        return refresh_views(conn, self.refresh_statements, each_commits=self.capabilities.refresh_commits)

    @staticmethod
    @abstractmethod
    def is_connection_error(exc: BaseException) -> bool:
        """True when `exc`, raised by this warehouse's driver, means the connection is unusable: transient, so
        the invocation is retried once on a fresh connection. Any other error is the statement's: terminal."""


# --------------------------------------------------------------------------- the registry
DEFAULT_KIND = "postgres"  # a function whose environment names no TXPIPE_WAREHOUSE_KIND (the local stand-in)
# Every warehouse by TXPIPE_WAREHOUSE_KIND, as "module:Class": a module is imported when its kind is first asked
# for, so a function never imports a warehouse it does not use (the local target: not Redshift's, nor its driver).
WAREHOUSES: dict[str, str | type[Warehouse]] = {
    "postgres": "lambdas.core.warehouse.postgres:PostgresWarehouse",
    "redshift": "lambdas.core.warehouse.redshift:RedshiftWarehouse",
}
_imported: dict[str, type[Warehouse]] = {}


def register(kind: str, warehouse: str | type[Warehouse]) -> None:
    """Adds (or replaces) a warehouse kind: its class, or "module:Class" to import on first use."""
    WAREHOUSES[kind] = warehouse


def warehouse_class(kind: str) -> type[Warehouse]:
    """The class of a warehouse kind, its module imported on first use."""
    entry = WAREHOUSES.get(kind)
    if entry is None:
        raise RuntimeError(f"warehouse kind {kind!r} is not supported: use one of {', '.join(WAREHOUSES)}")
    if not isinstance(entry, str):
        return entry
    if entry not in _imported:
        module, _, name = entry.partition(":")
        _imported[entry] = getattr(importlib.import_module(module), name)
    return _imported[entry]


def is_connection_error(exc: BaseException) -> bool:
    """True when any warehouse in use says `exc` means its connection is gone (Warehouse.is_connection_error).
    A kind whose module was never imported has made no connection, so it is not asked."""
    in_use = [*_imported.values(), *(entry for entry in WAREHOUSES.values() if not isinstance(entry, str))]
    return any(warehouse.is_connection_error(exc) for warehouse in in_use)


class CopyRows(Sequence[tuple[str | None, ...]]):
    """A claimed batch as it came out of the OLTP database's COPY: text-format lines, one per row.

    A warehouse that takes COPY text passes `data` through untouched; anything else reads it as a sequence
    of tuples of text (None for NULL), parsed on first use."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._count = data.count(b"\n")
        self._rows: list[tuple[str | None, ...]] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> tuple[str | None, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str | None, ...]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if self._rows is None:
            self._rows = [tuple(None if v == "\\N" else unescape_copy_text(v) for v in line.split("\t"))
                          for line in self.data.decode().splitlines()]
        return self._rows[index]

    def last_value(self, column: int) -> str:
        """A field of the last row, read without parsing the others (the keyset bound)."""
        start = self.data.rfind(b"\n", 0, len(self.data) - 1) + 1
        return unescape_copy_text(self.data[start:].rstrip(b"\n").split(b"\t")[column].decode())


# The escapes COPY TO writes (it never writes octal or hex ones).
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r", "\\b": "\b", "\\f": "\f", "\\v": "\v"}


def unescape_copy_text(value: str) -> str:
    """One field of PostgreSQL's COPY text format, unescaped."""
    if "\\" not in value:
        return value
    return re.sub(r"\\[\\tnrbfv]", lambda m: _UNESCAPES[m.group(0)], value)


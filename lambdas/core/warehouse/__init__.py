"""The warehouse behind one interface, as dlt's destinations: what sync may ask of a warehouse.

A warehouse is PostgreSQL or "PostgreSQL with differences" (Redshift). The SQL they share lives in
schema.py (the fact table, the staging table, the merge), and run_sync drives both the same way:
per batch, clear the stage, `load_stage` the claimed rows into it, merge, commit, then `unstage`
whatever the load left outside the warehouse. What differs is behind this interface:

- `connect()`: a DB-API connection with autocommit off (psycopg2, or redshift-connector);
- `load_stage(cursor, rows)`: how a batch gets into `orders_stage` (PostgreSQL: COPY FROM STDIN;
  Redshift: gzipped CSV to S3 and COPY with an IAM role, or multi-row INSERTs without a bucket);
- `unstage(staged)`: removes the batch's copy outside the warehouse once the warehouse has committed it;
- `capabilities`: what run_sync must know to drive it (the rows it takes, whether TRUNCATE commits,
  whether waking it costs money).

The implementations: `postgres.PostgresWarehouse` (the local stand-in) and `redshift.RedshiftWarehouse`.
env.py picks one by TXPIPE_WAREHOUSE_KIND.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, overload

from lambdas.core.schema import STAGE_COLUMNS

__all__ = ["STAGE_COLUMNS", "Capabilities", "CopyRows", "Staged", "Warehouse", "connect_redshift", "iam_login",
           "is_connection_error"]


@dataclass(frozen=True)
class Capabilities:
    """What run_sync relies on (dlt's DestinationCapabilitiesContext, in small)."""

    # load_stage takes rows as PostgreSQL's COPY text (tuples of text, or CopyRows straight from the OLTP
    # database's COPY TO STDOUT), so run_sync claims them as text and parses nothing. Otherwise typed rows
    # (int, Decimal, aware datetime), as psycopg2 returns them.
    copy_text: bool
    # TRUNCATE commits the open transaction (Redshift). run_sync then commits the cleared stage itself, so
    # the batch's load and merge are one transaction that starts after it, on every warehouse alike.
    truncate_commits: bool
    # Each wake is billed (Redshift Serverless: at least 60 s of its base capacity per query that wakes it). A
    # run that claims nothing then never connects to it, and records no run in its sync_runs: there, sync_runs
    # lists the runs that moved orders. A warehouse that does not (PostgreSQL) records every run.
    bills_by_wake: bool


@dataclass(frozen=True)
class Staged:
    """A copy of one batch that load_stage left outside the warehouse (an S3 object), for `unstage`."""

    uri: str


class Warehouse(ABC):
    """One kind of warehouse: how to connect, how to fill the staging table, what it can do."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection to the warehouse, autocommit off."""

    @abstractmethod
    def load_stage(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> Staged | None:
        """Fills the (cleared) orders_stage with `rows` (STAGE_COLUMNS, in order) on `cur`, inside the batch's
        open transaction. Returns what it left outside the warehouse, if anything."""

    def unstage(self, staged: Staged) -> None:  # noqa: B027 - a no-op unless the kind stages outside
        """Removes a batch's outside copy; run_sync calls it once the warehouse has committed that batch."""


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


# The Redshift login helpers at the package level too (the AWS functions' IAM login is tested here, and
# env.py retries on is_connection_error). Imported last: redshift.py builds on the interface above.
from lambdas.core.warehouse.redshift import connect_redshift, iam_login, is_connection_error  # noqa: E402

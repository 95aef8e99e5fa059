"""A warehouse kind is one class and one registry line: a tiny warehouse defined here, registered, and nothing else
changed, is what env builds and what the ops (migrate), refresh and sync functions drive, and its own errors are
what the functions retry on (lambdas.core.warehouse's recipe)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lambdas import ops, refresh, sync
from lambdas.core import db, env, schema
from lambdas.core import warehouse as registry
from lambdas.core.warehouse import BatchFile, Capabilities, Warehouse
from tests.support.fakes import ScriptedConnection

STAMP = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CLAIMED = [("t-1", 1, "TX", "cheese", 2, Decimal("16.99"), STAMP, STAMP),
           ("t-2", 2, "CA", "veggie", 1, Decimal("15.25"), STAMP, STAMP)]


class TinyLost(Exception):
    """What the tiny warehouse's driver raises when its connection is gone."""


class TinyConnection(ScriptedConnection):
    """The tiny warehouse's connection: records its statements and its commits, as a fresh warehouse answers."""

    def __init__(self) -> None:
        super().__init__({"FROM schema_migrations": []})

    def commit(self) -> None:
        self.statements.append("COMMIT")

    def close(self) -> None:
        pass


class TinyWarehouse(Warehouse):
    """A warehouse defined in a test: its own variable, connection, load, grants, refresh order and errors."""

    kind = "tiny"
    capabilities = Capabilities(copy_text=False, truncate_commits=False, bills_by_wake=False, refresh_commits=False)
    settings = ("TXPIPE_TINY_DSN",)
    refresh_statements = ("REFRESH MATERIALIZED VIEW state_sales", "REFRESH MATERIALIZED VIEW sales_by_state")

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connections: list[TinyConnection] = []
        self.granted: list[dict[str, str]] = []
        self.loaded: list[tuple[Any, ...]] = []
        self.lose_next_connect = False

    @classmethod
    def from_env(cls, variables: Mapping[str, str]) -> TinyWarehouse:
        if not variables.get("TXPIPE_TINY_DSN"):
            raise RuntimeError("the tiny warehouse is not configured: set TXPIPE_TINY_DSN")
        return cls(variables["TXPIPE_TINY_DSN"])

    def connect(self) -> Any:
        if self.lose_next_connect:
            self.lose_next_connect = False
            raise TinyLost("connection reset")
        self.connections.append(TinyConnection())
        return self.connections[-1]

    def grant(self, conn: Any, variables: Mapping[str, str]) -> None:
        self.granted.append(dict(variables))

    def load_batch(self, cur: Any, rows: Sequence[tuple[Any, ...]]) -> BatchFile | None:
        self.loaded.extend(rows)
        return None

    @staticmethod
    def is_connection_error(exc: BaseException) -> bool:
        return isinstance(exc, TinyLost)


VARIABLES = {"TXPIPE_WAREHOUSE_KIND": "tiny", "TXPIPE_TINY_DSN": "tiny://one"}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedConnection]:
    """The tiny kind registered (the registry restored after), the functions' environment naming it, and an OLTP
    database that answers as a fresh one with two orders in its outbox. Yields that OLTP connection."""
    monkeypatch.setattr(registry, "WAREHOUSES", dict(registry.WAREHOUSES))
    registry.register("tiny", TinyWarehouse)
    oltp = ScriptedConnection({"FROM schema_migrations": [], "SKIP LOCKED": CLAIMED,
                               "FILTER (WHERE NOT held)": [(0, 0, None)]})
    monkeypatch.setattr(env, "oltp", lambda: oltp)
    env.reset_backends()
    with env.function_environment(VARIABLES):
        yield oltp
    db.drop_cached("warehouse")
    env.reset_backends()


def backend() -> TinyWarehouse:
    built = env.warehouse_backend()
    assert isinstance(built, TinyWarehouse)
    return built


def test_env_builds_it_from_its_own_variables(tiny: ScriptedConnection) -> None:
    """env finds the class by TXPIPE_WAREHOUSE_KIND, builds it with its from_env (no endpoint variables: it reads
    its own), reuses it while they stay the same, and connects through it; its from_env refuses what is missing."""
    built = backend()
    assert built.dsn == "tiny://one" and env.warehouse_backend() is built
    assert env.warehouse() is built.connections[0] and env.warehouse() is built.connections[0]  # cached
    with env.function_environment({**VARIABLES, "TXPIPE_TINY_DSN": "tiny://two"}):
        assert backend().dsn == "tiny://two"
    with env.function_environment({"TXPIPE_WAREHOUSE_KIND": "tiny"}), pytest.raises(RuntimeError, match="TINY_DSN"):
        env.warehouse()
    with env.function_environment({"TXPIPE_WAREHOUSE_KIND": "bigquery"}), \
            pytest.raises(RuntimeError, match="not supported: use one of postgres, redshift, tiny"):
        env.warehouse_backend()


def test_ops_migrate_runs_the_migrations_and_its_grants(tiny: ScriptedConnection) -> None:
    """The ops function's migrate: the shared warehouse migrations on its connection, then its own grants, given
    the function's environment, then the reference population."""
    every = {"oltp": [version for version, _ in schema.OLTP_MIGRATIONS],
             "warehouse": [version for version, _ in schema.WAREHOUSE_MIGRATIONS]}
    assert ops.handler({"action": "migrate"}, None) == {"applied": every, "state_population_rows": 51}
    built = backend()
    assert built.granted == [VARIABLES]
    [conn] = built.connections
    assert conn.statements[0] == schema.MIGRATIONS_TABLE
    assert conn.statements.count(schema.RECORD_MIGRATION_SQL) == len(schema.WAREHOUSE_MIGRATIONS)
    assert "DELETE FROM state_population" in conn.statements


def test_refresh_runs_its_statements_in_its_transactions(tiny: ScriptedConnection) -> None:
    """The refresh function: the snapshot's stamp, then the tiny warehouse's own REFRESH statements in its own
    order, then the record, all in one transaction (its capabilities say a REFRESH does not commit)."""
    assert refresh.handler({}, None) == {"refreshed": list(schema.MATERIALIZED_VIEWS)}
    [conn] = backend().connections
    assert conn.statements == [schema.TAKE_SNAPSHOT_SQL, *TinyWarehouse.refresh_statements,
                               schema.RECORD_REFRESH_SQL, "COMMIT"]


def test_sync_loads_through_it(tiny: ScriptedConnection) -> None:
    """The sync function claims typed rows (it takes no COPY text), hands them to its load_batch between the
    shared stage and merge statements, commits, and records the run (it does not bill by wake)."""
    result = sync.handler({}, None)
    assert (result["synced"], result["batches"], result["warehouse_woken"]) == (2, 1, True)
    built = backend()
    assert built.loaded == CLAIMED
    [conn] = built.connections
    assert conn.statements == [schema.BATCH_TABLE_DDL, schema.BATCH_TABLE_CLEAR, schema.MERGE_SQL, "COMMIT",
                               schema.RECORD_RUN_SQL, "COMMIT"]


def test_its_own_lost_connection_is_retried_once(tiny: ScriptedConnection) -> None:
    """A function retries once, on a fresh connection, when the warehouse's class says the error means its
    connection is gone; any other error is raised at once."""
    built = backend()
    built.lose_next_connect = True
    assert refresh.handler({}, None) == {"refreshed": list(schema.MATERIALIZED_VIEWS)}
    assert len(built.connections) == 1  # the first connect was lost; the retry's is the one
    assert registry.is_connection_error(TinyLost()) and not registry.is_connection_error(ValueError())
    attempts: list[str] = []

    def refuse() -> Any:
        attempts.append("connect")
        raise ValueError("not a connection error")

    db.drop_cached("warehouse")
    built.connect = refuse  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="not a connection error"):
        refresh.handler({}, None)
    assert attempts == ["connect"]

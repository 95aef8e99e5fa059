"""What the unit tests' recording connections share: a connection that is its own cursor and context manager,
as psycopg2's `with conn.cursor() as cur:` uses them. Each test module adds the execute/fetch it needs.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self


class SelfCursor:
    def cursor(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class ScriptedConnection(SelfCursor):
    """A recording connection that answers by script: each statement is recorded, and a query is answered with
    the rows of the first `answers` key found in its text (fetchone: the first of them; fetchall: all of them).
    A query with no answer fetches None / no rows; rowcount is always 0."""

    rowcount = 0

    def __init__(self, answers: Mapping[str, list[tuple[Any, ...]]] | None = None) -> None:
        self.statements: list[str] = []
        self.answers = dict(answers or {})
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)
        self._rows = next((list(rows) for key, rows in self.answers.items() if key in sql), [])

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

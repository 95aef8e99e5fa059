"""What the unit tests' recording connections share: a connection that is its own cursor and context manager,
as psycopg2's `with conn.cursor() as cur:` uses them. Each test module adds the execute/fetch it needs."""

from __future__ import annotations

from typing import Self


class SelfCursor:
    def cursor(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

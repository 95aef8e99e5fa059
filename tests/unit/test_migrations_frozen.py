"""An applied migration's SQL never changes (lambdas/core/schema.py): every deployed database keeps what a
migration applied, and `migrate` never runs it again, so a migration whose text followed a constant of today
(the fact table's columns, the views) would give a new deployment a schema no upgraded one has. Each
migration's statements are pinned here by hash; a change to the schema is a new migration."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from lambdas.core import schema

# sha256 of json.dumps(statements), per database and version, as each migration was first applied.
APPLIED = {
    ("oltp", 1): "9d62c50f69aebbd4175cacfe3e8b076ea50fd0d4f272892c527577d8505b59e9",
    ("oltp", 2): "cec8d4b4442da27600bd90e9378c9315f806a692dfed558479a0a451db6d9986",
    ("warehouse", 1): "43ba831305d196412791fbdd327a5fa09d01ef595558fa05971c173b0aeae8ed",
    ("warehouse", 2): "7939bd263174d502fb90cb0e62fde91d3adededd023f1bf4eb633e0ba644f14c",
    ("warehouse", 3): "d5f4e8a0d39fa22ddf276876231c8e0a8284d4651952c562ce3bf0a08dc5247d",
}
MIGRATIONS = {"oltp": schema.OLTP_MIGRATIONS, "warehouse": schema.WAREHOUSE_MIGRATIONS}


def _digest(statements: list[str]) -> str:
    return hashlib.sha256(json.dumps(statements).encode()).hexdigest()


@pytest.mark.parametrize(("database", "version"), sorted(APPLIED))
def test_an_applied_migration_never_changes(database: str, version: int) -> None:
    statements = dict(MIGRATIONS[database])[version]
    assert _digest(statements) == APPLIED[(database, version)], (
        f"{database} migration {version} changed: deployed databases keep what it applied; add a migration")


def test_every_migration_is_pinned() -> None:
    """A new migration gets its hash here once it is released (print it with _digest)."""
    listed = {(database, version) for database, migrations in MIGRATIONS.items() for version, _ in migrations}
    assert listed == set(APPLIED)
    for migrations in MIGRATIONS.values():
        versions = [version for version, _ in migrations]
        assert versions == list(range(1, len(versions) + 1))  # in order, none skipped


def test_the_views_of_today_are_the_ones_the_migrations_left() -> None:
    """VIEW_DDL (what redshift_access creates again as the refresh user) is, per view, the last CREATE of it in
    the migrations: a view changed in VIEW_DDL alone would differ between new and upgraded warehouses."""
    last = {}
    for _, statements in schema.WAREHOUSE_MIGRATIONS:
        for sql in statements:
            created = re.match(r"CREATE MATERIALIZED VIEW (\w+)", sql)
            if created:
                last[created.group(1)] = sql
    assert schema.VIEW_DDL == last

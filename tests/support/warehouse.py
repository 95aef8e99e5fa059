"""A test warehouse set up as a deployment's is: through the ops function's own migration.

`migrate_warehouse(conn, kind)` does to a fresh warehouse database what ops' `migrate` action (lambdas/ops.py
_migrate) does to a deployment's: the warehouse class's own `migrate`, then its `grant` with the function's
environment (`variables`), then the reference population. Tests (tests/conftest.py's session warehouse, the
Redshift-path warehouse behind the shim) and benchmarks (benchmarks/redshift.py) set up their warehouses
through it, so they run on the schema a deployment runs on. A test of schema.migrate itself calls it directly.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdas.core import schema
from lambdas.core.warehouse import warehouse_class


def migrate_warehouse(conn: Any, kind: str, variables: Mapping[str, str] | None = None) -> list[int]:
    """The warehouse migrations not yet applied, the kind's grants, the 51 population rows, as ops' migrate runs
    them (on PostgreSQL the grants bring the indexes and the functions' users; on Redshift they need the users
    the stack names in `variables`, and there are none by default, as behind the test shim). Returns the
    migrations applied."""
    warehouse = warehouse_class(kind)()
    applied = warehouse.migrate(conn)
    warehouse.grant(conn, dict(variables or {}))
    schema.load_state_population(conn)
    return applied

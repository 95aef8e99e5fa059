"""What the integration tests share: the Redshift-path warehouse's fixtures.

There is no Redshift here, so redshift-connector reaches the session's PostgreSQL server through the Redshift
shim, as an md5 role owning a warehouse database of its own (tests/support/redshift.py says more). These
fixtures serve test_redshift_path.py, test_warehouse_redshift_*.py and test_sync_wake.py:

- `redshift` (once per module): that database, set up through ops' migration (tests/support/warehouse.py),
  and the shim in front of it;
- `rs`: it emptied (reference data kept), its views refreshed to empty;
- `rs_dbs`: the session's databases emptied, with the four customers these tests order for;
- `rs_handler_env`: the handlers in this process see the session's OLTP and queue and that warehouse.

The helpers themselves live in tests/support/ and tests/integration/helpers.py; nothing here is imported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from psycopg2 import sql

from lambdas.core.db import Endpoint, connect_postgres
from tests.integration.helpers import md5_login, retry_until, seed_customers
from tests.support.redshift import CUSTOMERS, RS_DB, RS_ROLE, SCRATCH_DB, Redshift
from tests.support.redshift_shim import RedshiftShim
from tests.support.warehouse import migrate_warehouse


@pytest.fixture(scope="module")
def redshift(pg_server, databases, tmp_path_factory) -> Iterator[Redshift]:
    """An md5 role owning its own migrated warehouse database, a pg_hba line for it, and a shim in front."""
    server, admin_ref = pg_server
    password = "rs-" + os.urandom(8).hex() + " q'uote\"d\\%"  # the secret must travel intact, specials and all
    secret = tmp_path_factory.mktemp("redshift") / "secret.json"
    secret.write_text(json.dumps({"username": RS_ROLE, "password": password}))
    os.chmod(secret, 0o600)
    admin = connect_postgres(Endpoint("127.0.0.1", server.port, "postgres", admin_ref), autocommit=True)
    shim = RedshiftShim(server.port).start()
    try:
        with md5_login(server, admin, RS_ROLE, password, RS_DB):
            target = Redshift(shim, Endpoint("127.0.0.1", shim.port, RS_DB, f"file:{secret}"),
                              Endpoint("127.0.0.1", server.port, RS_DB, admin_ref), password)
            conn = retry_until(lambda: target.connect(connect_timeout=2))
            try:
                migrate_warehouse(conn, "redshift")  # no users named: the grants are the stack's, not the shim's
            finally:
                conn.close()
            yield target
    finally:
        shim.stop()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.close()


@pytest.fixture
def rs(redshift: Redshift) -> Redshift:
    """The Redshift-path warehouse emptied (reference data kept) with its views refreshed to empty."""
    redshift.query("TRUNCATE orders_fact, sync_runs")
    redshift.query("REFRESH MATERIALIZED VIEW sales_by_state")
    redshift.query("REFRESH MATERIALIZED VIEW state_sales")
    return redshift


@pytest.fixture
def rs_dbs(clean):
    """The session's databases emptied, holding the Redshift-path tests' four customers."""
    seed_customers(clean, CUSTOMERS)
    return clean


@pytest.fixture
def rs_handler_env(handler_env, rs: Redshift, monkeypatch) -> Redshift:
    """The handlers see the session's OLTP and queue, and the Redshift-path warehouse through the shim."""
    seed_customers(handler_env, CUSTOMERS)
    for key, value in rs.env().items():
        monkeypatch.setenv(key, value)
    return rs

"""The Redshift-path warehouse of the integration tests: a database behind the Redshift shim, and what its tests share.

`Redshift` is an md5 role's warehouse database reached through the shim (tests/support/redshift_shim.py) as
redshift-connector reaches Redshift, or directly (psycopg2, the superuser) for independent checks; the names
and the customers the tests use (RS_ROLE, RS_DB, CUSTOMERS, STATE_OF, SALES); `fact_rows`, `outbox_ids`,
`tricky_orders` (values a CSV or a hand-built INSERT would mangle) and `FailingCommit` (a crash just before a
commit). The fixtures that build it (`redshift`, `rs`, `rs_dbs`, `rs_handler_env`) are tests/integration/conftest.py's.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from lambdas.core.db import Endpoint
from lambdas.core.orders import Order
from lambdas.core.warehouse.redshift import connect_redshift
from tests.support.database import query
from tests.support.redshift_shim import RedshiftShim

RS_ROLE = "txpipe_rs"
RS_DB = "test_rs_warehouse"
SCRATCH_DB = "test_rs_scratch"
CUSTOMERS = [[1, "TX", "A"], [2, "TX", "B"], [3, "CA", "C"], [4, "NY", "D"]]
STATE_OF = {1: "TX", 2: "TX", 3: "CA", 4: "NY"}
FACT_COLUMNS = "order_id, customer_id, state, pizza_type, qty, retail_price, accepted_at, stored_at, loaded_at"


@dataclass
class Redshift:
    """The md5 role's warehouse database, reached through the shim (as Redshift) or directly (for checks)."""

    shim: RedshiftShim
    endpoint: Endpoint  # 127.0.0.1:<shim port>, the md5 role's secret
    direct: Endpoint  # the server's own port, the superuser's secret
    password: str

    def connect(self, **kwargs: Any) -> Any:
        return connect_redshift(self.endpoint, ssl=False, **kwargs)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Runs a query with psycopg2 straight on the server: an independent read of what the driver wrote."""
        return query(self.direct, sql, params, autocommit=True)

    def env(self) -> dict[str, str]:
        return {**self.endpoint.to_env("warehouse"), "TXPIPE_WAREHOUSE_KIND": "redshift",
                "TXPIPE_WAREHOUSE_SSL": "false"}


def fact_rows(rs: Redshift) -> list[tuple[Any, ...]]:
    return rs.query(f"SELECT {FACT_COLUMNS} FROM orders_fact ORDER BY order_id")  # noqa: S608 - fixed names


def outbox_ids(dbs) -> list[str]:
    conn = dbs.connect("oltp", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT order_id FROM outbox ORDER BY order_id")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def tricky_orders() -> list[Order]:
    """Ids a CSV or a hand-built INSERT would mangle, prices at the edges of decimal(8,2), odd time zones."""
    base = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC) - timedelta(minutes=5)
    zones = [timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45)), UTC,
             timezone(timedelta(hours=14)), timezone(timedelta(hours=-9, minutes=-30))]
    ids = ["a,b", 'quote"inside', "single'quote", "back\\slash", "\\N", " padded ", "NULL", "%s", "$1",
           "x" * 64, "tab\there", "ünïcødé-ℤ", "); DROP TABLE orders_fact; --"]
    prices = ["0.01", "16.99", "999999.99", "10.10", "12.34"]
    return [Order(oid, 1 + i % 4, ["cheese", "meat lover", "veggie"][i % 3], 1 + i % 100,
                  Decimal(prices[i % len(prices)]),
                  (base + timedelta(microseconds=7 * i)).astimezone(zones[i % len(zones)]))
            for i, oid in enumerate(ids)]


class FailingCommit:
    """A warehouse connection whose `at`-th commit raises: the process dies just before that commit. On Redshift
    run_sync commits twice a batch: 1 after clearing the stage (TRUNCATE commits there), 2 after the merge."""

    def __init__(self, conn: Any, at: int = 2) -> None:
        self._conn, self._at, self.commits = conn, at, 0

    def commit(self) -> None:
        self.commits += 1
        if self.commits == self._at:
            raise ConnectionAbortedError("simulated crash before the warehouse commit")
        self._conn.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


# TX: customers 1 and 2. cheese 3 for 30.00; pepperoni 3 for 36.00; veggie 3 for 36.00; meat lover 4 for 20.00.
SALES = [("tx-1", 1, "cheese", 3, "10.00"), ("tx-2", 1, "pepperoni", 2, "12.00"), ("tx-3", 2, "pepperoni", 1, "12.00"),
         ("tx-4", 2, "veggie", 3, "12.00"), ("tx-5", 2, "meat lover", 4, "5.00"), ("ca-1", 3, "cheese", 2, "10.50")]

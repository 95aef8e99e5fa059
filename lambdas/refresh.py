"""refresh function: scheduled event -> both reporting views refreshed from one snapshot of the warehouse,
as the warehouse runs it (Warehouse.refresh: the stamp, then REFRESH MATERIALIZED VIEW for each, in its
transactions)."""

from __future__ import annotations

import time
from typing import Any

from lambdas.core import env, log


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    refreshed = env.warehouse_backend().refresh(env.warehouse())
    log.emit("refresh", f"refreshed {log.count(len(refreshed), 'view')}", views=refreshed,
             seconds=round(time.monotonic() - started, 3))
    return {"refreshed": refreshed}

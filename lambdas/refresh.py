"""refresh function: scheduled event -> both reporting views refreshed from one snapshot of the warehouse
(reporting.refresh_views: the stamp, then REFRESH MATERIALIZED VIEW for each)."""

from __future__ import annotations

import time
from typing import Any

from lambdas.core import env, log
from lambdas.core.reporting import refresh_views


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    refreshed = refresh_views(env.warehouse(), concurrently=env.warehouse_kind() == "postgres")
    log.emit("refresh", f"refreshed {log.count(len(refreshed), 'view')}", views=refreshed,
             seconds=round(time.monotonic() - started, 3))
    return {"refreshed": refreshed}

"""refresh function: scheduled event -> both reporting views refreshed from one snapshot of the warehouse
(reporting.refresh_views: the stamp, then REFRESH MATERIALIZED VIEW for each)."""

from __future__ import annotations

from typing import Any

from lambdas.core import env
from lambdas.core.reporting import refresh_views


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"refreshed": refresh_views(env.warehouse(), concurrently=env.warehouse_kind() == "postgres")}

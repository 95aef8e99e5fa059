"""refresh function: scheduled event -> REFRESH MATERIALIZED VIEW for the reporting views."""

from __future__ import annotations

from typing import Any

from lambdas.core import env
from lambdas.core.reporting import refresh_views


@env.fresh_connections_on_error
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"refreshed": refresh_views(env.warehouse(), concurrently=env.warehouse_kind() == "postgres")}

"""ingest function: API Gateway REST proxy event -> orders queue."""

from __future__ import annotations

from typing import Any

from lambdas.core import env
from lambdas.core.ingest import handle


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, env.queue())

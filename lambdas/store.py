"""store function: SQS event -> OLTP orders + outbox, with partial batch failures."""

from __future__ import annotations

from typing import Any

from lambdas.core import env
from lambdas.core.store import process_records


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_records(event["Records"], env.oltp, env.reset_oltp, env.queue()).response()

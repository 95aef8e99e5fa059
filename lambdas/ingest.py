"""ingest function: API Gateway REST proxy event -> orders queue."""

from __future__ import annotations

import base64
import json
from typing import Any

from lambdas.core import env, log
from lambdas.core.ingest import handle
from lambdas.core.orders import parse_json


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = handle(event, env.queue())
    _log(event, response)
    return response


def _log(event: dict[str, Any], response: dict[str, Any]) -> None:
    """One line per request: how many orders it held and how many were accepted or refused. Never the orders
    themselves: a refusal names its first problem as the client was told it (a position, a field, a reason)."""
    status = int(response["statusCode"])
    body = json.loads(response["body"])
    if status == 202:
        accepted = int(body["accepted"])
        log.emit("ingest", f"accepted {log.count(accepted, 'order')}", orders=accepted, accepted=accepted, refused=0,
                 status=status)
    elif status == 503:
        held = len(body.get("order_ids", []))
        log.emit("ingest", f"queue unavailable: {log.count(held, 'order')} answered 503, for the client to retry",
                 level=log.ERROR, orders=held, accepted=0, refused=0, status=status)
    else:
        orders = _order_count(event)
        errors = body.get("errors") or [{}]
        first = errors[0]
        where = [f"index {first['index']}"] if first.get("index") is not None else []
        where += [str(first["field"])] if first.get("field") else []
        reason = str(first.get("reason") or body.get("error"))
        reason = f"{' '.join(where)}: {reason}" if where else reason
        held = "an unreadable request" if orders is None else f"a request of {log.count(orders, 'order')}"
        log.emit("ingest", f"refused {held}: {reason}",
                 level=log.WARNING, orders=orders, accepted=0, refused=orders, errors=body.get("error_count"),
                 status=status)


def _order_count(event: dict[str, Any]) -> int | None:
    """How many orders a refused request held (an object: 1, an array: its length); None when unreadable.
    Read again here, on the refusal path only, within the same limits as the validator."""
    try:
        raw = event.get("body") or ""
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
        data = parse_json(body)
    except Exception:  # noqa: BLE001 - too large, not JSON, not UTF-8: the count is unknown
        return None
    return len(data) if isinstance(data, list) else 1 if isinstance(data, dict) else None

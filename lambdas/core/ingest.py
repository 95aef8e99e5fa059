"""ingest: an API Gateway proxy request in, orders on the queue, a 202 (or a 4xx) out.

All-or-nothing: a request with any invalid order is refused whole, and nothing of
it is enqueued. The refusal names the first MAX_ERRORS_SHOWN problems and counts
them all, so it is a few KB whatever was sent:

    {"error": "request refused; nothing was enqueued",
     "errors": [{"index": 3, "field": "qty", "reason": "..."}, ...], "error_count": 57}
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lambdas.core.orders import ItemError, RequestRejected, accept, pack_messages, parse_json, validate_items
from lambdas.core.queue import Queue, QueueError

log = logging.getLogger("txpipe.ingest")

MAX_ERRORS_SHOWN = 20


def response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _refused(rejected: RequestRejected) -> dict[str, Any]:
    return response(rejected.status, {"error": "request refused; nothing was enqueued",
                                      "errors": [e.to_dict() for e in rejected.errors[:MAX_ERRORS_SHOWN]],
                                      "error_count": rejected.error_count})


def handle(event: dict[str, Any], queue: Queue, now: Callable[[], datetime] | None = None) -> dict[str, Any]:
    if event.get("httpMethod", "POST") != "POST":
        return response(405, {"error": "use POST /orders"})
    raw = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            body = base64.b64decode(raw, validate=True)
        else:
            body = raw.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return _refused(RequestRejected([ItemError(None, None, "body is not valid base64")]))
    try:
        orders = accept(validate_items(parse_json(body)), now() if now else None)
    except RequestRejected as rejected:
        return _refused(rejected)
    try:
        queue.send_batch(pack_messages(orders))
    except QueueError as exc:
        log.error("enqueue failed: %s", exc)
        # Part of the request may already be queued (SQS batches are not atomic across calls):
        # the ids let a client retry without doubling anything.
        return response(503, {"error": "the order queue is unavailable; retry with these order_id values",
                              "order_ids": [o.order_id for o in orders]})
    return response(202, {"accepted": len(orders), "order_ids": [o.order_id for o in orders],
                          "accepted_at": orders[0].accepted_at.isoformat()})

"""Orders the store kept aside (rejected_orders): an unknown customer, or an order_id re-sent with
other content. Read by `txpipe rejected list|export`, a page at a time (keyset on id).

A reason is a kind, optionally followed by "; " and what the operator needs to settle it: an order_id
re-sent with other content names the order that was kept (conflict_reason). Counts and the --reason
filter go by the kind.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

PAGE_LIMIT = 1000  # rows per ops call: well under Lambda's 6 MB response
DETAIL_SEPARATOR = "; "  # the SQL below spells it too: split_part(reason, '; ', 1) is a reason's kind


def conflict_reason(kind: str, customer_id: int, pizza_type: str, qty: int, retail_price: Decimal,
                    accepted_at: datetime) -> str:
    """The reason of an order whose order_id is already stored with other content, naming the order kept.

    The rule (README, "When an order cannot be stored"): the content stored first under an order_id is kept
    for good; every later one with other content is rejected with this reason, whichever the API accepted
    first (batches are stored concurrently, so the first stored need not be the first accepted)."""
    return (f"{kind}{DETAIL_SEPARATOR}kept the order stored first: accepted_at {accepted_at.isoformat()}, "
            f"customer_id {customer_id}, {qty} x {pizza_type} at {retail_price}")


def summary(oltp: Any) -> dict[str, Any]:
    """How many, the oldest and newest, and how many per kind of reason."""
    with oltp.cursor() as cur:
        cur.execute("SELECT reason_kind, count(*), min(rejected_at), max(rejected_at) FROM (SELECT "
                    "split_part(reason, '; ', 1) AS reason_kind, rejected_at FROM rejected_orders) AS r "
                    "GROUP BY reason_kind")
        rows = cur.fetchall()
    oltp.commit()
    return {
        "count": sum(r[1] for r in rows),
        "oldest_at": min(r[2] for r in rows).isoformat() if rows else None,
        "newest_at": max(r[3] for r in rows).isoformat() if rows else None,
        "reasons": {r[0]: int(r[1]) for r in sorted(rows, key=lambda r: -r[1])},
    }


def page(oltp: Any, *, after_id: int = 0, limit: int = 100, reason: str | None = None) -> list[dict[str, Any]]:
    """Rejected orders with id > after_id, oldest first; each with the order as it was queued."""
    limit = max(1, min(int(limit), PAGE_LIMIT))
    with oltp.cursor() as cur:
        cur.execute(
            """SELECT id, order_id, reason, rejected_at, payload FROM rejected_orders
               WHERE id > %s AND (%s::text IS NULL OR reason = %s OR split_part(reason, '; ', 1) = %s)
               ORDER BY id LIMIT %s""",
            (int(after_id), reason, reason, reason, limit),
        )
        rows = cur.fetchall()
    oltp.commit()
    return [{"id": int(r[0]), "order_id": r[1], "reason": r[2], "rejected_at": r[3].isoformat(),
             "order": _order(r[4])} for r in rows]


def _order(payload: str) -> dict[str, Any]:
    """The queued order as a client would post it again: retail_price a JSON number, no accepted_at."""
    try:
        data = json.loads(payload)
    except ValueError:
        return {"payload": payload}
    if not isinstance(data, dict):
        return {"payload": payload}
    data.pop("accepted_at", None)
    if isinstance(data.get("retail_price"), str):
        try:
            data["retail_price"] = json.loads(data["retail_price"])
        except ValueError:
            pass
    return data

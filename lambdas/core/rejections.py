"""Orders the store kept aside (rejected_orders): an unknown customer, or an order_id re-sent with
other content. Read by `txpipe rejected list|export`, a page at a time (keyset on id).

A rejection is resolved once an order is stored under its order_id after it was rejected: the customer
loaded and the exported file re-sent (or the order fixed and re-sent with its order_id). Only an unknown
customer is resolved so: a conflict's order_id keeps the content stored first for good, and the order kept
may even be stored after the rejection (batches are stored concurrently). Counts, `status` and the list
are of the pending ones; `txpipe rejected purge --resolved` deletes the resolved.

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
UNKNOWN_CUSTOMER = "unknown customer_id"  # lambdas.core.store.REASON_UNKNOWN_CUSTOMER (store imports this module)
# The order stored under a rejection's order_id since, which resolves it (the module's docstring); r is
# rejected_orders, its one parameter UNKNOWN_CUSTOMER. At most one row: order_id is the orders' key.
_STORED_SINCE = ("LEFT JOIN orders o ON o.order_id = r.order_id AND r.reason = %s "
                 "AND o.stored_at > r.rejected_at")
SUMMARY_SQL = ("SELECT split_part(r.reason, '; ', 1) AS reason_kind, "  # noqa: S608 - fixed text
               "count(*) FILTER (WHERE o.order_id IS NULL), count(o.order_id), "
               "min(r.rejected_at) FILTER (WHERE o.order_id IS NULL), "
               "max(r.rejected_at) FILTER (WHERE o.order_id IS NULL) "
               f"FROM rejected_orders r {_STORED_SINCE} GROUP BY reason_kind")
PENDING_SQL = f"SELECT count(*) FROM rejected_orders r {_STORED_SINCE} WHERE o.order_id IS NULL"  # noqa: S608
PAGE_SQL = ("SELECT r.id, r.order_id, r.reason, r.rejected_at, r.payload, o.stored_at "  # noqa: S608 - fixed text
            f"FROM rejected_orders r {_STORED_SINCE} "
            "WHERE r.id > %s AND (%s::text IS NULL OR r.reason = %s OR split_part(r.reason, '; ', 1) = %s) "
            "AND (%s OR o.order_id IS NULL) ORDER BY r.id LIMIT %s")
PURGE_SQL = ("DELETE FROM rejected_orders r USING orders o "
             "WHERE o.order_id = r.order_id AND r.reason = %s AND o.stored_at > r.rejected_at")


def conflict_reason(kind: str, customer_id: int, pizza_type: str, qty: int, retail_price: Decimal,
                    accepted_at: datetime) -> str:
    """The reason of an order whose order_id is already stored with other content, naming the order kept.

    The rule (README, "When an order cannot be stored"): the content stored first under an order_id is kept
    for good; every later one with other content is rejected with this reason, whichever the API accepted
    first (batches are stored concurrently, so the first stored need not be the first accepted)."""
    return (f"{kind}{DETAIL_SEPARATOR}kept the order stored first: accepted_at {accepted_at.isoformat()}, "
            f"customer_id {customer_id}, {qty} x {pizza_type} at {retail_price}")


def summary(oltp: Any) -> dict[str, Any]:
    """How many are pending, the oldest and newest of them, how many per kind of reason, and how many were
    resolved (stored since)."""
    with oltp.cursor() as cur:
        cur.execute(SUMMARY_SQL, (UNKNOWN_CUSTOMER,))
        rows = cur.fetchall()
    oltp.commit()
    pending = [row for row in rows if row[1]]
    return {
        "count": sum(int(r[1]) for r in rows),
        "resolved": sum(int(r[2]) for r in rows),
        "oldest_at": min(r[3] for r in pending).isoformat() if pending else None,
        "newest_at": max(r[4] for r in pending).isoformat() if pending else None,
        "reasons": {r[0]: int(r[1]) for r in sorted(pending, key=lambda r: -r[1])},
    }


def pending_count(oltp: Any) -> int:
    """The rejected orders not resolved: what `txpipe status` counts."""
    with oltp.cursor() as cur:
        cur.execute(PENDING_SQL, (UNKNOWN_CUSTOMER,))
        count = cur.fetchone()[0]
    oltp.commit()
    return int(count)


def page(oltp: Any, *, after_id: int = 0, limit: int = 100, reason: str | None = None,
         resolved: bool = False) -> list[dict[str, Any]]:
    """Pending rejected orders with id > after_id, oldest first (with `resolved`, the resolved ones too); each
    with the order as it was queued, whether it is resolved, and when it was stored if so."""
    limit = max(1, min(int(limit), PAGE_LIMIT))
    with oltp.cursor() as cur:
        cur.execute(PAGE_SQL, (UNKNOWN_CUSTOMER, int(after_id), reason, reason, reason, bool(resolved), limit))
        rows = cur.fetchall()
    oltp.commit()
    return [{"id": int(r[0]), "order_id": r[1], "reason": r[2], "rejected_at": r[3].isoformat(),
             "order": _order(r[4]), "resolved": r[5] is not None,
             "stored_at": r[5].isoformat() if r[5] is not None else None} for r in rows]


def purge_resolved(oltp: Any) -> int:
    """Deletes the resolved rejected orders (each stored since) in one statement; returns how many."""
    with oltp.cursor() as cur:
        cur.execute(PURGE_SQL, (UNKNOWN_CUSTOMER,))
        purged = cur.rowcount
    oltp.commit()
    return int(purged)


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

"""One order_id posted 20 times at once with 20 different contents, through the real local HTTP API: the
content stored first is kept, and each of the 19 others is rejected with a reason naming the kept one
(lambdas.core.store; README, "When an order cannot be stored")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from lambdas.core.rejections import conflict_reason
from lambdas.core.store import REASON_CONFLICT
from tests.support.local_cli import Cli, local_home, post, wait_for

COPIES = 20
ORDER_ID = "pos-9-000001"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-same-id") as cli:
        cli.json("seed", "--generate", "50")
        yield cli


def content(i: int) -> dict[str, Any]:
    """The i-th copy: same order_id, its own customer, quantity and price."""
    return {"order_id": ORDER_ID, "customer_id": 1 + i % 50, "type": "cheese", "qty": i + 1,
            "retail_price": float(Decimal("10.00") + i)}


def test_twenty_concurrent_copies_keep_the_first_stored_and_name_it_in_each_rejection(cli: Cli) -> None:
    """20 concurrent posts of one order_id, each with other content: all 202; one stored, never rewritten;
    19 rejected, every reason naming the stored one's accepted_at and content; none lost."""
    start = threading.Barrier(COPIES)
    answers: dict[int, tuple[int, dict[str, Any]]] = {}

    def send(i: int) -> None:
        start.wait()
        answers[i] = post(cli.state, json.dumps(content(i)).encode())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(code for code, _ in answers.values()) == [202] * COPIES, answers
    accepted_at = {i: datetime.fromisoformat(body["accepted_at"]) for i, (_, body) in answers.items()}

    wait_for(lambda: cli.json("rejected", "list")["count"] == COPIES - 1, timeout=30, what="19 rejected copies")
    wait_for(lambda: cli.json("status")["pipeline"]["queue"] == {"visible": 0, "in_flight": 0, "dead_letters": 0},
             what="an empty queue")
    [stored] = cli.sql("oltp", "SELECT customer_id, pizza_type, qty, retail_price, accepted_at FROM orders "
                               "WHERE order_id = %s", (ORDER_ID,))
    kept = next(i for i in range(COPIES) if (content(i)["customer_id"], content(i)["qty"]) == (stored[0], stored[2]))
    assert stored == (content(kept)["customer_id"], "cheese", kept + 1, Decimal("10.00") + kept, accepted_at[kept])

    listed = cli.json("rejected", "list", "--limit", "100")
    reason = conflict_reason(REASON_CONFLICT, *stored)
    assert {row["reason"] for row in listed["rows"]} == {reason}
    assert listed["reasons"] == {REASON_CONFLICT: COPIES - 1}  # counted by kind, not one line per kept order
    # every copy is somewhere: the kept one stored, each other one rejected as it was posted
    assert sorted([content(kept)] + [row["order"] for row in listed["rows"]], key=lambda o: o["qty"]) == [
        content(i) for i in range(COPIES)]
    assert cli.json("rejected", "list", "--reason", REASON_CONFLICT, "--limit", "100")["rows"] == listed["rows"]

    rank = sorted(accepted_at.values()).index(accepted_at[kept]) + 1
    print(f"\n{COPIES} concurrent copies of {ORDER_ID}: all 202; kept copy {kept} (qty {kept + 1}), number {rank} "
          f"of {COPIES} by accepted_at ({accepted_at[kept].isoformat()}); {len(listed['rows'])} rejected, each "
          f"reason: {reason!r}")
    cli.json("sync-now")
    assert cli.sql("warehouse", "SELECT qty FROM orders_fact WHERE order_id = %s", (ORDER_ID,)) == [(kept + 1,)]

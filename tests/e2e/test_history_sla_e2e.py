"""Issue 16 on the local target, through the CLI as an operator runs it: history is not a breach (item 11), a re-seed
that changes nothing says so, an empty dead-letter queue has nothing to purge (item 8), and a line of an NDJSON
file that is not JSON is refused alone (item 5). Tests run in file order on one deployment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_cli import Cli, local_home, wait_for

HISTORY = 3000
DAYS = 30


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-history-sla") as cli:
        yield cli


def test_seeding_the_same_customers_again_says_nothing_changed(cli: Cli) -> None:
    assert "loaded 200 customers: 200 new" in cli("seed", "--generate", "200").stdout
    assert "nothing changed: 200 customers already as given" in cli("seed", "--generate", "200").stdout
    assert cli.json("seed", "--generate", "200") == {"customers": 200, "new": 0, "updated": 0, "moved": 0}


def test_pending_history_is_no_breach(cli: Cli) -> None:
    """Loaded and not yet synced, days old: pending, yet left out of the report, which exits 0 and says so."""
    cli.json("seed", "--history", str(HISTORY), "--days", str(DAYS))
    report = cli.json("sla-report", "--since", "all")
    assert (report["pending"], report["breaches"]) == (0, 0)
    assert report["history"] == {"orders": HISTORY, "pending": HISTORY, "counted": False}


def test_synced_history_is_no_breach_and_the_report_says_how_many_it_left_out(cli: Cli) -> None:
    cli.json("sync-now")
    report = cli.json("sla-report")  # the default window: the last 24 h holds about 1/30 of the history
    assert (report["oltp_orders"], report["synced"], report["pending"], report["breaches"]) == (0, 0, 0, 0)
    left_out = report["history"]["orders"]
    assert 0 < left_out < HISTORY and report["history"]["pending"] == 0
    text = " ".join(cli("sla-report").stdout.split())
    assert (f"{left_out} historical orders loaded by seed --history are not counted (--include-history counts "
            "them)") in text
    assert "none pending" in text
    assert cli.json("sla-report", "--since", "all")["history"]["orders"] == HISTORY


def test_include_history_counts_it_as_late(cli: Cli) -> None:
    """Counted in, the history is late: all of it but the last few orders (accepted up to a minute before the
    load, then synced within the 15 minutes)."""
    report = cli.json("sla-report", "--since", "all", "--include-history", code=3)
    assert (report["synced"], report["history"]["counted"]) == (HISTORY, True)
    assert HISTORY - 10 <= report["breaches"] <= HISTORY
    result = cli("sla-report", "--since", "all", "--include-history", code=3)
    assert f"SLA breached by {report['breaches']} orders" in result.stderr


def test_a_real_breach_still_exits_3(cli: Cli, tmp_path: Path) -> None:
    """A live order synced after the SLA (1 ms here) is a breach, history or not."""
    path = tmp_path / "live.ndjson"
    path.write_text(json.dumps({"customer_id": 7, "type": "cheese", "qty": 1, "retail_price": 12.99}) + "\n")
    cli("send", str(path))
    cli.json("sync-now")
    assert cli.json("sla-report")["breaches"] == 0
    result = cli("sla-report", "--sla", "0.001", code=3)
    assert "SLA breached by 1 order\n" in result.stderr
    assert re.search(r"historical orders loaded by seed --history are\s+not counted", result.stdout)


def test_a_line_that_is_not_json_is_refused_and_the_rest_stored(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    good = [json.dumps({"customer_id": n, "type": "veggie", "qty": 2, "retail_price": 13.99, "order_id": f"w-{n}"})
            for n in (1, 2, 3)]
    path.write_text("\n".join([*good, '{"customer_id": 4, "type": "veggie" "qty": 2}', ""]))
    rejects = tmp_path / "rejects.ndjson"
    result = cli("send", str(path), "--rejects", str(rejects), code=1)
    assert "4 orders: accepted 3, refused 1, not sent 0" in result.stdout
    assert "refused line 4: not valid JSON: Expecting ',' delimiter (column 37)" in result.stderr
    assert rejects.read_text() == '{"customer_id": 4, "type": "veggie" "qty": 2}\n'
    wait_for(lambda: cli.sql("oltp", "SELECT count(*) FROM orders WHERE order_id IN ('w-1', 'w-2', 'w-3')")[0][0]
             == 3, what="the three good lines stored")


def test_an_empty_dead_letter_queue_has_nothing_to_purge(cli: Cli) -> None:
    """No terminal to confirm on, and no need: it says so and exits 0."""
    assert "the dead-letter queue is empty: nothing to purge" in cli("dlq", "purge").stdout

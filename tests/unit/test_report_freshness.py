"""The line every report ends with: when the views were refreshed, what they lack, the command to run."""

from __future__ import annotations

from datetime import UTC, datetime

from lambdas.core.contract import Freshness
from txpipe_cli.commands.report import freshness_line

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def fresh(at: str | None, waiting: int, syncing: int | None, **extra: str) -> Freshness:
    return Freshness.from_dict({"views_refreshed_at": at, "awaiting_refresh": waiting, "awaiting_sync": syncing,
                                **extra})


def test_never_refreshed_with_orders_pending_names_both_commands() -> None:
    line = freshness_line(fresh(None, 0, 1234), NOW)
    assert line == ("views not refreshed since they were created; 1,234 orders not in them yet (0 in the warehouse, "
                    "1,234 awaiting the sync) (run: txpipe sync-now && txpipe refresh-views)")


def test_refreshed_and_complete_says_so_with_its_age() -> None:
    line = freshness_line(fresh("2026-12-02T09:30:00+00:00", 0, 0), NOW)
    assert line == "views refreshed 2026-12-02 09:30:00 UTC (2 h 30 min ago); every stored order is in them"


def test_synced_but_not_refreshed_asks_for_a_refresh_only() -> None:
    line = freshness_line(fresh("2026-12-02T11:59:20+00:00", 7, 0), NOW)
    assert line.endswith("(40 s ago); 7 orders not in them yet (7 in the warehouse, 0 awaiting the sync) "
                         "(run: txpipe refresh-views)")


def test_oltp_down_reports_the_warehouse_count_and_the_reason() -> None:
    line = freshness_line(fresh("2026-11-29T12:00:00+00:00", 3, None, awaiting_sync_error="connection refused"), NOW)
    assert line.endswith("(3 d ago); 3 orders in the warehouse not in them yet; OLTP not reached: connection refused")

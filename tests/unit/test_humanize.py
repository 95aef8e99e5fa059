"""Durations, moments and counts as people read them (txpipe_cli/humanize.py): one formatter for every table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from txpipe_cli.humanize import duration, moment, plural

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (0.42, "0.4 s"), (3.0, "3 s"), (9.94, "9.9 s"), (12.4, "12 s"), (59.4, "59 s"),
    (59.6, "1 min"), (60, "1 min"), (119.6, "2 min"), (250, "4 min 10 s"), (3599.6, "1 h"), (7979, "2 h 13 min"),
    (86_400, "1 d"), (90_061, "1 d 1 h"), (2_592_041.11, "30 d"), (-5, "-5 s"),
])
def test_duration_in_at_most_two_units(seconds: float, text: str) -> None:
    """Two units at most, rounded to the smaller one shown (never "1 min 60 s"); a decimal only under 10 s."""
    assert duration(seconds) == text


def test_plural() -> None:
    assert [plural(n, "customer") for n in (0, 1, 2)] == ["0 customers", "1 customer", "2 customers"]
    assert plural(2, "child", "children") == "2 children"


def test_moment_says_how_long_ago_or_in_how_long() -> None:
    assert moment("2026-12-02T11:55:50+00:00", NOW) == "2026-12-02 11:55:50 UTC (4 min 10 s ago)"
    assert moment("2026-12-02T14:13:00+00:00", NOW) == "2026-12-02 14:13:00 UTC (in 2 h 13 min)"
    assert moment("2026-12-02T07:00:00-05:00", NOW) == "2026-12-02 12:00:00 UTC (0 s ago)"  # shown in UTC

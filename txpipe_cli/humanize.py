"""Numbers and words for people: durations, moments, counts with their noun.

Tables and text say `2 h 13 min`, `4 min 10 s`, `12 s`, `1 customer`, `3 customers`; JSON keeps the raw
numbers (seconds as seconds, timestamps as ISO 8601), so scripts never parse these.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Each unit with the next smaller one shown beside it: 2 h 13 min, not 2 h 13 min 5 s.
_UNITS = (("d", 86_400, "h", 3_600), ("h", 3_600, "min", 60), ("min", 60, "s", 1))


def duration(seconds: float) -> str:
    """A span of time in at most two units: `3 d 4 h`, `2 h 13 min`, `4 min 10 s`, `12 s`, `0.4 s`.

    Rounded to the smaller unit shown (119.6 s is `2 min`, never `1 min 60 s`); under 10 s one decimal is kept
    (a lag of 0.4 s is not `0 s`), and a whole number drops it (`3 s`)."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 9.95:
        return f"{round(seconds, 1):g} s"
    for big, big_size, small, small_size in _UNITS:
        whole = round(seconds / small_size) * small_size  # rounded to the smaller unit
        if whole >= big_size:
            count, rest = divmod(whole, big_size)
            return f"{count} {big}" + (f" {rest // small_size} {small}" if rest else "")
    return f"{round(seconds)} s"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 customer`, `0 customers`, `5000 customers`; `nouns` for a plural that is not noun + "s"."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def moment(iso: str, now: datetime | None = None) -> str:
    """An ISO timestamp as a person reads it, in UTC, with how long ago (or in how long) it is:
    `2026-12-02 20:24:09 UTC (4 min 10 s ago)`, `2026-12-03 02:00:00 UTC (in 5 h 35 min)`."""
    at = datetime.fromisoformat(iso)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    when = f"in {duration(-seconds)}" if seconds < 0 else f"{duration(seconds)} ago"
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({when})"

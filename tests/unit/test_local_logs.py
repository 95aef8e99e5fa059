"""Reading the local runtime's log (txpipe_cli/local/logs.py): records by function and time, rotation, follow."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from txpipe_cli.local import logs, runtime


def write(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_records_group_their_traceback_and_filter_by_function_and_time(tmp_path: Path) -> None:
    write(tmp_path / "runtime.log.1", "2026-12-01T10:00:00.000Z INFO sync txpipe.runtime invoked in 5 ms")
    write(tmp_path / "runtime.log",
          "2026-12-01T11:00:00.000Z ERROR sync txpipe.server sync failed",
          "Traceback (most recent call last):",
          '  File "x.py", line 1, in <module>',
          "2026-12-01T11:00:01.500Z WARNING runtime txpipe.runtime poller: database away")
    every = list(logs.read(tmp_path))
    assert [r.function for r in every] == ["sync", "sync", "runtime"]  # the rotated file first
    assert every[1].message.endswith('File "x.py", line 1, in <module>') and every[1].level == "ERROR"
    late = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert [r.message for r in logs.read(tmp_path, function="sync", since=late)][0].startswith("sync failed")


def test_follow_prints_new_records_across_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    write(log, "2026-12-01T11:00:00.000Z INFO ops txpipe.runtime old")
    steps = iter([
        lambda: write(log, "2026-12-01T11:00:02.000Z INFO ops txpipe.runtime new one"),
        lambda: (log.rename(tmp_path / "runtime.log.1"), write(log, "2026-12-01T11:00:03.000Z INFO ops x after")),
    ])
    seen: list[str] = []

    def sleep(_: float) -> None:
        next(steps, lambda: None)()

    for record in logs.follow(tmp_path, stop=lambda: len(seen) >= 3, sleep=sleep, poll=0):
        seen.append(record.message)
    assert seen == ["old", "new one", "after"]


def test_the_runtime_writes_what_the_reader_reads(tmp_path: Path) -> None:
    """The runtime's own formatter (UTC, the function of the invocation) is parsed back record for record."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        runtime._log_to(tmp_path / "runtime.log")
        token = runtime.current_function.set("refresh")
        logging.getLogger("txpipe.test").warning("views [refreshed]")
        runtime.current_function.reset(token)
        logging.getLogger("txpipe.test").info("outside")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    records = list(logs.read(tmp_path))
    assert [(r.function, r.level, r.logger, r.message) for r in records] == [
        ("refresh", "WARNING", "txpipe.test", "views [refreshed]"), ("runtime", "INFO", "txpipe.test", "outside")]
    assert abs((datetime.now(UTC) - records[0].at).total_seconds()) < 60

"""The runtime's log read back with the functions' structured lines among the plain ones, and followed: the
window first, then (said once) each new record, none twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from lambdas.core import log
from txpipe_cli import log_records
from txpipe_cli.commands.logs import _lines
from txpipe_cli.local import logs


def write(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def structured(function: str, message: str, level: int = log.INFO, **figures: object) -> str:
    record = log.line(function, message, level=level, at=datetime(2026, 12, 1, 11, 0, 1, tzinfo=UTC), **figures)
    return (f"2026-12-01T11:00:01.000Z {record['level']} {function} {log.LOGGER_NAME} "
            + json.dumps(record, separators=(",", ":")))


def test_structured_lines_read_back_with_their_figures_beside_plain_ones(tmp_path: Path) -> None:
    write(tmp_path / "runtime.log",
          "2026-12-01T11:00:00.000Z WARNING runtime txpipe.runtime poller: database away",
          structured("store", "10 messages: 480 orders stored", messages=10, stored=480),
          structured("ops", "status", level=log.DEBUG, action="status"),
          "2026-12-01T11:00:02.000Z INFO ops txpipe.function {not json")
    plain, store, status, broken = logs.read(tmp_path)
    assert (plain.structured, plain.figures) == (False, {})
    assert plain.to_dict() == {"level": "WARNING", "timestamp": "2026-12-01T11:00:00.000Z", "service": "runtime",
                               "message": "poller: database away", "logger": "txpipe.runtime"}
    assert (store.function, store.level, store.message, store.figures) == (
        "store", "INFO", "10 messages: 480 orders stored", {"messages": 10, "stored": 480})
    assert list(store.to_dict()) == ["level", "timestamp", "service", "message", "messages", "stored"]
    assert status.level == "DEBUG" and log_records.level_rank(status.level) < log_records.level_rank("INFO")
    assert (broken.structured, broken.message) == (False, "{not json")  # shown as written, not lost
    assert _lines(store, 80) == ["[dim]2026-12-01 11:00:01 INFO   [/] [bold]store  [/] 10 messages: 480 orders stored",
                                 "    [dim]messages=10 stored=480[/]"]
    many = log_records.LogRecord(**{**store.__dict__, "figures": {f"figure_{i}": i for i in range(30)}})
    folded = _lines(many, 80)[1:]  # the figures fold under the line, each whole, none past 80 columns
    assert len(folded) > 1 and all(len(line) - len("[dim][/]") <= 80 for line in folded)
    assert " ".join(line.strip()[5:-3] for line in folded).split() == [f"figure_{i}={i}" for i in range(30)]


def test_follow_says_when_it_has_caught_up_and_gives_each_record_once(tmp_path: Path) -> None:
    log_file = tmp_path / "runtime.log"
    write(tmp_path / "runtime.log.1", structured("sync", "moved 1 order", moved=1))
    write(log_file, structured("sync", "moved 2 orders", moved=2))
    events: list[str] = []
    steps = iter([lambda: write(log_file, structured("sync", "moved 3 orders", moved=3))])

    def sleep(_: float) -> None:
        next(steps, lambda: None)()

    for record in logs.follow(tmp_path, stop=lambda: len(events) >= 4, sleep=sleep, poll=0,
                              caught_up=lambda: events.append("caught up")):
        events.append(record.message)
    assert events == ["moved 1 order", "moved 2 orders", "caught up", "moved 3 orders"]

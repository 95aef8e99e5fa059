"""Reading the local runtime's log (`txpipe logs`): records by function and time, and following it.

The runtime writes one line per record (txpipe_cli/local/runtime.py, LOG_FORMAT):
`2026-12-01T22:30:58.024Z ERROR sync txpipe.runtime message`, tracebacks on the lines after it. A function's
own line (lambdas.core.log, logger txpipe.function) carries its structured record as the message:
`2026-12-01T22:30:58.024Z INFO sync txpipe.function {"level":"INFO",...,"message":"moved 600 orders",...}`,
read back into the same LogRecord, its figures apart. The log rotates by size (runtime.log.3 is the oldest), so
reading a window reads the rotated files first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from lambdas.core.log import LOGGER_NAME
from txpipe_cli.log_records import LogRecord, from_structured, structured

RECORD = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+) (\S+) (\S+) (.*)$")
def _parse(lines: Iterator[str]) -> Iterator[LogRecord]:
    """Records from lines; a line that starts no record (a traceback's) belongs to the one before."""
    current: LogRecord | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        match = RECORD.match(line)
        if match:
            if current is not None:
                yield current
            at = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
            level, function, logger, message = match.group(2, 3, 4, 5)
            record = structured(message) if logger == LOGGER_NAME else None
            current = (from_structured(record, at, logger) if record is not None
                       else LogRecord(at, level, function, logger, message))
            if record is not None:
                current.function = function  # the invocation's function, as the runtime saw it
        elif current is not None and line:
            current.message += "\n" + line
    if current is not None:
        yield current


def log_files(log_dir: Path, name: str = "runtime.log") -> list[Path]:
    """The log and its rotated files, oldest first."""
    rotated = sorted(log_dir.glob(f"{name}.[0-9]*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    current = log_dir / name
    return [*rotated, *([current] if current.exists() else [])]


def _wanted(record: LogRecord, function: str | None, since: datetime | None) -> bool:
    return (function is None or record.function == function) and (since is None or record.at >= since)


def read(log_dir: Path, *, function: str | None = None, since: datetime | None = None) -> Iterator[LogRecord]:
    for path in log_files(log_dir):
        with path.open(errors="replace") as handle:
            for record in _parse(handle):
                if _wanted(record, function, since):
                    yield record


def follow(log_dir: Path, *, function: str | None = None, since: datetime | None = None,
           stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
           poll: float = 0.5, caught_up: Callable[[], None] = lambda: None) -> Iterator[LogRecord]:
    """What `read` gives, then (`caught_up()` called in between) every new record as it is written, through
    rotations, until stop(). The current file is read to its end and followed through the same handle, so a
    record written meanwhile is given once."""
    path = log_dir / "runtime.log"
    handle = path.open(errors="replace") if path.exists() else None
    inode = path.stat().st_ino if handle is not None else None
    for rotated in log_files(log_dir):
        if rotated != path:
            with rotated.open(errors="replace") as old:
                yield from (r for r in _parse(old) if _wanted(r, function, since))
    pending = ""
    if handle is not None:
        complete, _, pending = handle.read().rpartition("\n")
        yield from (r for r in _parse(iter(complete.split("\n"))) if _wanted(r, function, since))
    caught_up()
    try:
        while not stop():
            if handle is None or not path.exists() or path.stat().st_ino != inode:  # rotated (or not yet there)
                if handle is not None:
                    pending += handle.read()
                    handle.close()
                handle = path.open(errors="replace") if path.exists() else None
                inode = path.stat().st_ino if handle is not None else None
            chunk = handle.read() if handle is not None else ""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition("\n")
                for record in _parse(iter(complete.split("\n"))):
                    if _wanted(record, function, None):
                        yield record
            else:
                sleep(poll)
    finally:
        if handle is not None:
            handle.close()

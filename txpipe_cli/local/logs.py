"""Reading the local runtime's log (`txpipe logs`): records by function and time, and following it.

The runtime writes one line per record (txpipe_cli/local/runtime.py, LOG_FORMAT):
`2026-12-01T22:30:58.024Z ERROR sync txpipe.runtime message`, tracebacks on the lines after it. The
log rotates by size (runtime.log.3 is the oldest), so reading a window reads the rotated files first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RECORD = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+) (\S+) (\S+) (.*)$")


@dataclass
class LogRecord:
    at: datetime
    level: str
    function: str
    logger: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"time": self.at.isoformat(), "level": self.level, "function": self.function,
                "logger": self.logger, "message": self.message}


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
            current = LogRecord(at, match.group(2), match.group(3), match.group(4), match.group(5))
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
           poll: float = 0.5) -> Iterator[LogRecord]:
    """What `read` gives, then every new record as it is written (through rotations), until stop()."""
    yield from read(log_dir, function=function, since=since)
    path = log_dir / "runtime.log"
    handle = path.open(errors="replace") if path.exists() else None
    if handle is not None:
        handle.seek(0, 2)
    inode = path.stat().st_ino if handle is not None else None
    pending = ""
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

"""What a function did: one structured line per invocation, with Powertools Logger's keys.

    {"level":"INFO","timestamp":"2026-12-01T22:30:58.024Z","service":"sync","message":"moved 600 orders",
     "moved":600,"already_present":0,"pending":0,"seconds":0.139,"rows_per_second":4317,...}

`service` is the function; the figures follow the four keys. The record goes out through Python logging, on
the logger "txpipe.function":

- on Lambda (AWS_LAMBDA_FUNCTION_NAME set), straight to stdout as that one JSON line, as Powertools' Logger
  prints it, not through the Lambda runtime's own handler (which would prefix it): CloudWatch Logs keeps it as
  one log event whatever the function's log format, and `txpipe logs --target aws` parses it back;
- anywhere else, to the root logger's handlers as any record: the local runtime, which runs every function in
  one process, writes it into its log (txpipe_cli/local/runtime.py), where `txpipe logs` parses it back.

Levels: INFO for what the operator reads; DEBUG for the reads the CLI makes through ops for itself (status,
report, freshness...), which `txpipe logs` shows only with --debug; WARNING when something was refused, waits
or was given up (a refused request, the store's retries and dead letters); ERROR when the function could not
do its work (the queue down).

Figures are counts, durations, names and short reasons, never an order's content nor a secret: the handlers
pass only those, and `line` takes no other types (a dict, say an order, is refused).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "txpipe.function"
KEYS = ("level", "timestamp", "service", "message")  # Powertools Logger's; the figures follow them
MAX_TEXT = 300  # a figure's or message's characters at most: one line stays one short line

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


def timestamp(at: datetime) -> str:
    """UTC to the millisecond, as CloudWatch shows it: 2026-12-01T22:30:58.024Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def count(n: int, word: str) -> str:
    """`1 order`, `2 orders`: a message's figures in words."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line: a driver's message spans several
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


def _figure(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN: CloudWatch would not parse the line
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [_clip(v) for v in value]
    raise TypeError(f"log figure {name!r} must be a number, a short text or a list of texts, not "
                    f"{type(value).__name__}")


def line(service: str, message: str, *, level: int = INFO, at: datetime | None = None,
         **figures: Any) -> dict[str, Any]:
    """The record: the four keys, then the figures in the order given."""
    clash = set(figures) & {*KEYS, "logger"}
    if clash:
        raise ValueError(f"log figures may not be named {sorted(clash)}")
    record: dict[str, Any] = {"level": logging.getLevelName(level), "timestamp": timestamp(at or datetime.now(UTC)),
                              "service": service, "message": _clip(message)}
    record.update((name, _figure(name, value)) for name, value in figures.items())
    return record


def emit(service: str, message: str, *, level: int = INFO, **figures: Any) -> dict[str, Any]:
    """Logs one record (see `line`) as one JSON line; returns the record."""
    record = line(service, message, level=level, **figures)
    _logger.log(level, json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    return record


class _Stdout(logging.Handler):
    """Writes the line alone to whatever sys.stdout is now, flushed: a Lambda frozen after the return must not
    keep it in a buffer."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(record.getMessage() + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging never fails the function
            self.handleError(record)


def configure(environ: Mapping[str, str]) -> None:
    """On Lambda, the lines go to stdout alone; elsewhere, to the root logger's handlers."""
    on_lambda = bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    for handler in [h for h in _logger.handlers if isinstance(h, _Stdout)]:
        _logger.removeHandler(handler)
    if on_lambda:
        _logger.addHandler(_Stdout())
    _logger.propagate = not on_lambda


_logger = logging.getLogger(LOGGER_NAME)
_logger.setLevel(logging.DEBUG)  # the level filter is the reader's (`txpipe logs --debug`), not the writer's
configure(os.environ)

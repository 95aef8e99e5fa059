"""What a function logged, as both targets read it back: a LogRecord per record (the local runtime's log:
txpipe_cli/local/logs.py; CloudWatch Logs: txpipe_cli/aws/logs.py), a function's structured line (lambdas.core.log,
Powertools' keys) read into one, and the levels `txpipe logs --level` filters by.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdas.core.log import KEYS, timestamp

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")  # `txpipe logs --level`, least to most severe


def level_rank(level: str) -> int:
    """DEBUG 0 .. ERROR 3 (CRITICAL as ERROR); a level nobody knows as INFO."""
    name = {"CRITICAL": "ERROR", "FATAL": "ERROR", "WARN": "WARNING"}.get(level.upper(), level.upper())
    return LEVELS.index(name) if name in LEVELS else 1


@dataclass
class LogRecord:
    at: datetime
    level: str
    function: str
    logger: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)  # a structured line's, after its four keys
    structured: bool = False  # a function's own line (lambdas.core.log), not a plain log line

    def to_dict(self) -> dict[str, Any]:
        """As the function wrote it (Powertools' keys, then the figures); a plain line in the same keys, with the
        logger that wrote it."""
        record = {"level": self.level, "timestamp": timestamp(self.at), "service": self.function,
                  "message": self.message}
        return {**record, **self.figures} if self.structured else {**record, "logger": self.logger}


def structured(text: str) -> dict[str, Any] | None:
    """The record of a structured line (a JSON object with Powertools' four keys), else None."""
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and all(key in record for key in KEYS) else None


def from_structured(record: dict[str, Any], at: datetime, logger: str) -> LogRecord:
    """A structured record as a LogRecord; `at` when its own timestamp does not parse."""
    try:
        at = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        pass
    figures = {key: value for key, value in record.items() if key not in KEYS}
    return LogRecord(at, str(record["level"]).upper(), str(record["service"]), logger, str(record["message"]),
                     figures, structured=True)

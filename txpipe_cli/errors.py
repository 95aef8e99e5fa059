"""Exit codes and the one error type commands raise; `app.main` turns it into one line."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1        # the command failed; the line printed says why
    USAGE = 2        # bad flags or arguments (Typer/Click's own code)
    SLA_BREACH = 3   # sla-report found at least one breach


class TxpipeError(Exception):
    """A failure the operator can act on: a reason, and optionally what to do next."""

    def __init__(self, reason: str, *, hint: str | None = None, code: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.code = code

    def line(self) -> str:
        return f"{self.reason} ({self.hint})" if self.hint else self.reason

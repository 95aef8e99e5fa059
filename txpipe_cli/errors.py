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


class OptionError(TxpipeError):
    """A flag or argument refused before any work (exit 2, as Click's own usage errors)."""

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(reason, hint=hint, code=ExitStatus.USAGE)


def aws_error(exc: BaseException) -> TxpipeError | None:
    """One line for botocore's configuration errors (no credentials, no region), wherever they surface."""
    import sys

    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return None
    if isinstance(exc, botocore.NoCredentialsError | botocore.PartialCredentialsError):
        return TxpipeError(f"no usable AWS credentials: {exc}", hint="run: aws configure (or export AWS_PROFILE)")
    if isinstance(exc, botocore.NoRegionError):
        return TxpipeError("no AWS region configured", hint="run: export AWS_DEFAULT_REGION=us-east-1")
    if isinstance(exc, botocore.BotoCoreError | botocore.ClientError):
        return TxpipeError(f"AWS: {exc}", hint="run: txpipe doctor --target aws")
    return None


def path_error(exc: OSError, action: str | None = None) -> TxpipeError:
    """One line for a file system error, with a command that shows or fixes the cause."""
    from pathlib import Path

    path = Path(str(exc.filename)) if exc.filename else None
    reason = exc.strerror or str(exc)
    if path is None:
        return TxpipeError(f"{action or 'file system error'}: {reason}", hint="run: df -h .")
    what = f"cannot {action} {path}" if action else f"{path}"
    if isinstance(exc, FileNotFoundError) and not path.parent.exists():
        hint = f"run: mkdir -p {path.parent}" if action in (None, "write") else f"run: ls {path.parent.parent}"
    elif isinstance(exc, FileNotFoundError):
        hint = f"run: ls {path.parent}"
    elif isinstance(exc, PermissionError):
        hint = f"run: ls -ld {path.parent} {path}"
    else:
        hint = f"run: ls -ld {path.parent}"
    return TxpipeError(f"{what}: {reason}", hint=hint)

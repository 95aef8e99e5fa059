"""Ctrl-C: a clean stop where it is the way to stop (`logs --follow`: "stopped", exit 0), elsewhere one line
saying what goes on without the command, exit 130 (sync-now: the sync goes on, or none was started)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app
from txpipe_cli.commands import logs, warehouse
from txpipe_cli.local.logs import LogRecord

runner = CliRunner()


def interrupted_records(history: list[LogRecord]) -> Callable[..., Iterator[LogRecord]]:
    def records(target: str, stage: str, function: str | None, start: Any, follow: bool,
                caught_up: Callable[[], None]) -> Iterator[LogRecord]:
        yield from history
        if follow:
            caught_up()
        raise KeyboardInterrupt

    return records


def test_ctrl_c_ends_logs_follow_cleanly_and_an_empty_window_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_records", interrupted_records([]))
    result = runner.invoke(app, ["logs", "sync", "--follow"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ("no lines in the last 10m for sync; waiting for new ones (Ctrl-C stops)\n"
                             "stopped\n")


def test_ctrl_c_while_reading_a_window_is_an_interruption(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_records", interrupted_records([]))
    result = runner.invoke(app, ["logs"])
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")


class SyncTarget:
    """The sync's invoke is where Ctrl-C lands (`during`: sync), or the queue-depth read before it (ops)."""

    def __init__(self, during: str) -> None:
        self.during = during

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        if function == self.during:
            raise KeyboardInterrupt
        return {"visible": 0, "in_flight": 0, "dead_letters": 0}


@pytest.mark.parametrize(("target", "during", "said"), [
    ("local", "sync", "interrupted: the sync continues in the runtime; `txpipe status` shows when it ends"),
    ("aws", "sync", "interrupted: the sync continues in its Lambda function; "
                    "`txpipe status --target aws --stage dev` shows when it ends"),
    ("local", "ops", "interrupted: no sync was started; the scheduled sync moves what is stored"),
])
def test_an_interrupted_sync_now_says_what_goes_on(monkeypatch: pytest.MonkeyPatch, target: str, during: str,
                                                   said: str) -> None:
    monkeypatch.setattr(warehouse, "get_target", lambda name, stage: SyncTarget(during))
    result = runner.invoke(app, ["sync-now", "--target", target])
    assert (result.exit_code, result.stdout) == (130, "")
    assert " ".join(result.stderr.split()) == said

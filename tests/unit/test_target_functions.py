"""The targets' functions (txpipe_cli/targets.py): `invoke` waits no longer than its `timeout` on either target
(the local one: its Invoke API client's socket timeout; the AWS one: tests/aws/test_invoke_once.py), and `logs`
is how `txpipe logs` reads what they did (local: the runtime's log; AWS: CloudWatch Logs)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lambdas.functions import FUNCTIONS
from txpipe_cli.app import app
from txpipe_cli.aws.target import AwsTarget
from txpipe_cli.commands import logs as logs_command
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local import control
from txpipe_cli.local.logs import LogRecord
from txpipe_cli.local.state import LocalState
from txpipe_cli.local.target import LocalTarget
from txpipe_cli.targets import LocalPlan

runner = CliRunner()


@pytest.fixture
def silent_runtime(tmp_path: Path) -> Iterator[Path]:
    """A home whose runtime's Invoke API socket accepts a request and never answers (a hung runtime). The socket
    lives in a short directory of its own, as deploy chooses one when the home's path is long."""
    path = Path(tempfile.mkdtemp(prefix="txpipe-")) / "invoke.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # read nothing, answer nothing
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    LocalState(home=tmp_path, runtime={"invoke_socket": str(path)}).save()
    yield tmp_path
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
    shutil.rmtree(path.parent)


def test_local_invoke_gives_up_after_its_timeout(silent_runtime: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """invoke(timeout=0.3) on a runtime that never answers: the Invoke API client's socket times out at 0.3 s,
    one line says so, and the call returns within a second (not the 900 s default)."""
    timeouts: list[float] = []
    real = control.UnixHTTPConnection

    class Spy(real):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            timeouts.append(self.sock.gettimeout())

    monkeypatch.setattr(control, "UnixHTTPConnection", Spy)
    started = time.monotonic()
    with pytest.raises(TxpipeError) as raised:
        LocalTarget(silent_runtime).invoke("ops", {"action": "status"}, timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert timeouts == [0.3]
    assert raised.value.reason == "the local runtime did not answer the ops function within 0.3 s"


def test_local_plan_invokes_and_reads_logs_as_the_local_target(silent_runtime: Path) -> None:
    plan = LocalPlan(LocalTarget(silent_runtime), orders_per_month=0)
    with pytest.raises(TxpipeError, match="within 0.2 s"):
        plan.invoke("sync", {}, timeout=0.2)
    assert list(plan.logs(None, datetime(2026, 1, 1, tzinfo=UTC))) == []  # no log written yet


def test_local_logs_read_the_runtime_log_of_the_home(tmp_path: Path) -> None:
    LocalState(home=tmp_path).save()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "runtime.log").write_text(
        "2026-12-01T10:00:00.000Z INFO sync txpipe.runtime early\n"
        "2026-12-01T11:00:00.000Z INFO sync txpipe.runtime late\n"
        "2026-12-01T11:00:01.000Z INFO ops txpipe.runtime other\n")
    target = LocalTarget(tmp_path)
    since = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert [r.message for r in target.logs("sync", since)] == ["late"]
    assert [r.function for r in target.logs(None, since)] == ["sync", "ops"]


def test_local_logs_with_nothing_deployed_say_so(tmp_path: Path) -> None:
    with pytest.raises(TxpipeError, match=f"nothing is deployed under {tmp_path}"):
        LocalTarget(tmp_path).logs(None, datetime.now(UTC))


def test_aws_logs_read_the_stages_functions_with_its_client(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from txpipe_cli.aws import logs as aws_logs

    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(aws_logs, "read", lambda aws, stage, functions, since, **options: asked.append(
        (aws, stage, functions, since, options)) or iter(()))
    target = AwsTarget(tmp_path, "prod", aws=object())  # type: ignore[arg-type]
    since = datetime(2026, 12, 1, tzinfo=UTC)

    def caught_up() -> None:
        pass

    target.logs("sync", since)
    target.logs(None, since, True, caught_up=caught_up)
    assert [(a[1], a[2], a[4]["follow"]) for a in asked] == [("prod", ["sync"], False), ("prod", list(FUNCTIONS), True)]
    assert all(a[0] is target.aws and a[3] == since for a in asked) and asked[1][4]["caught_up"] is caught_up


def test_the_logs_command_reads_through_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []

    class Target:
        def logs(self, function: str | None, since: datetime, follow: bool = False, **options: Any) -> Any:
            asked.append((function, follow))
            return iter([LogRecord(datetime.now(UTC), "INFO", "sync", "txpipe.runtime", "moved 3 orders")])

    monkeypatch.setattr(logs_command, "get_target", lambda name, stage: Target())
    result = runner.invoke(app, ["logs", "sync", "--target", "aws", "--stage", "prod"])
    assert result.exit_code == 0, result.output
    assert "moved 3 orders" in result.stdout and asked == [("sync", False)]

"""Process supervision of the local runtime (txpipe_cli/local/processes.py): a runtime is told by its command
line, every one of a home is found, and stopping is SIGTERM, then SIGKILL after STOP_GRACE."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from txpipe_cli.local import processes
from txpipe_cli.local.processes import RUNTIME_MODULE, pid_is_runtime, runtime_pids, stop_runtimes

# A stand-in runtime: its command line names the runtime module and the home, as the real one's does.
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
               "time.sleep(60)"
OBEYS_TERM = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def stand_in(procs: list[subprocess.Popen[bytes]], home: Path, code: str) -> int:
    proc = subprocess.Popen([sys.executable, "-c", code, RUNTIME_MODULE, "--home", str(home)],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handlers are in place
    procs.append(proc)
    return proc.pid


def test_a_runtime_is_told_by_its_command_line_and_home(tmp_path: Path, started: list) -> None:
    pid = stand_in(started, tmp_path / "a", OBEYS_TERM)
    assert pid_is_runtime(pid) and pid_is_runtime(pid, tmp_path / "a")
    assert not pid_is_runtime(pid, tmp_path / "b")  # another home's runtime is not this one's
    assert not pid_is_runtime(os.getpid()) and not pid_is_runtime(0) and not pid_is_runtime(-1)
    assert runtime_pids(tmp_path / "a") == [pid] and runtime_pids(tmp_path / "b") == []


def test_stop_is_term_then_kill_for_every_runtime_of_the_home(tmp_path: Path, started: list,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded runtime and a stray both go: one on SIGTERM, the one ignoring it on SIGKILL after the grace."""
    monkeypatch.setattr(processes, "STOP_GRACE", 0.5)
    home = tmp_path / "home"
    recorded, stray = stand_in(started, home, OBEYS_TERM), stand_in(started, home, IGNORES_TERM)
    other = stand_in(started, tmp_path / "other", OBEYS_TERM)
    began = time.monotonic()
    assert stop_runtimes(home, recorded) == sorted([recorded, stray])
    assert time.monotonic() - began >= 0.5  # the stray held out until the grace ran out
    deadline = time.monotonic() + 5  # SIGKILL is delivered, not awaited: the stray dies a moment later
    while (pid_is_runtime(recorded) or pid_is_runtime(stray)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_is_runtime(recorded) and not pid_is_runtime(stray)  # both gone
    assert pid_is_runtime(other)  # another home's runtime is left alone
    assert stop_runtimes(home, recorded) == []  # a recorded pid no runtime holds any more is not signalled


def test_the_target_leaves_processes_to_this_module() -> None:
    """One job per module: the local target decides when a runtime starts or stops; it never signals, spawns
    or reads /proc itself."""
    source = (Path(processes.__file__).parent / "target.py").read_text()
    for call in ("os.kill", "subprocess", "/proc/", "signal.", "waitpid"):
        assert call not in source, call

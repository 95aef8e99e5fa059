"""The local runtime as a process: started detached, found, asked whether it answers, and stopped.

The local target (target.py) decides when a runtime must start or go; this module is how:

- `spawn` starts `python -m txpipe_cli.local.runtime --home HOME` in its own session, what it prints before its
  own log is set up going to logs/runtime.out; `wait_until_answering` then waits for its /health;
- `pid_is_runtime` tells a runtime by its command line (the module and the home it serves), so a pid the
  kernel gave to another process since is never signalled; `runtime_pids` finds every runtime of a home in
  /proc, the strays a crashed deploy left unrecorded included;
- `health` asks a runtime through its control socket, within HEALTH_TIMEOUT (no answer: hung);
- `stop_runtimes` sends SIGTERM, then SIGKILL after STOP_GRACE to what is still there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from txpipe_cli.errors import TxpipeError
from txpipe_cli.local import control
from txpipe_cli.local.state import LocalState

RUNTIME_MODULE = "txpipe_cli.local.runtime"
HEALTH_TIMEOUT = 2.0  # a runtime that does not answer /health within this is hung
START_TIMEOUT = 20.0  # a runtime that does not answer /health this long after its start failed to start
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def pid_is_runtime(pid: int, home: Path | None = None) -> bool:
    """True if pid is alive and is our runtime (for this home): a recycled pid must not be killed."""
    args = _cmdline(pid) if pid > 0 else []
    if RUNTIME_MODULE.encode() not in args:
        return False
    return home is None or str(home).encode() in args


def runtime_pids(home: Path) -> list[int]:
    """Every runtime process serving this home, recorded or not (e.g. one a crashed deploy left)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and pid_is_runtime(int(entry.name), home):
            pids.append(int(entry.name))
    return sorted(pids)


def health(state: LocalState, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any] | None:
    """The runtime's /health answer, or None when it does not answer (dead, hung, or an earlier release's
    runtime without a control socket)."""
    try:
        status, _, body = control.call(state.invoke_socket, "GET", "/health", timeout=timeout, what="/health")
    except TxpipeError:
        return None
    return body if status == 200 and isinstance(body, dict) else None


def spawn(state: LocalState) -> subprocess.Popen[bytes]:
    """Starts the runtime of state's home detached; what it prints before its own log is set up (an import
    error, say) goes to logs/runtime.out, 0600, emptied at each start."""
    state.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state.log_dir, 0o700)
    out = os.open(state.log_dir / "runtime.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", RUNTIME_MODULE, "--home", str(state.home)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, cwd=str(state.home),
        )
    finally:
        os.close(out)


def wait_until_answering(proc: subprocess.Popen[bytes], state: LocalState, timeout: float = START_TIMEOUT) -> None:
    """Returns once the runtime just spawned answers /health; raises if it exits first (with the last line
    it printed) or stays silent for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _start_output(state).strip().splitlines()[-1:]
            raise TxpipeError(f"the local runtime exited at start: {tail[0] if tail else proc.returncode}",
                              hint=f"see {state.log_dir / 'runtime.out'}")
        if health(state, timeout=0.5):
            return
        time.sleep(0.1)
    raise TxpipeError(f"the local runtime did not answer within {timeout:g} s", hint=f"see {state.log_dir}")


def _start_output(state: LocalState) -> str:
    try:
        return (state.log_dir / "runtime.out").read_text(errors="replace")
    except OSError:
        return ""


def stop_runtimes(home: Path, recorded_pid: int = 0) -> list[int]:
    """Stops every runtime of this home, the recorded one and any stray: SIGTERM, then SIGKILL after
    STOP_GRACE (a hung or stopped process only yields to that). Returns the pids stopped."""
    pids = sorted(set(runtime_pids(home)) | ({recorded_pid} if pid_is_runtime(recorded_pid, home) else set()))
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and any(pid_is_runtime(p, home) for p in pids):
        for pid in pids:
            _reap(pid)
        time.sleep(0.05)
    for pid in pids:
        if pid_is_runtime(pid, home):
            _signal(pid, signal.SIGKILL)
            _reap(pid)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collects the runtime if this process started it, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass

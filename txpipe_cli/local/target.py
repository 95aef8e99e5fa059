"""Deploying, inspecting and tearing down the local target.

`deploy` converges, in order, and each step is a no-op when already true:

1. state     - $TXPIPE_HOME/local.json and generated secrets (0600 files): the
               server's superuser, one database user per function, the API key;
2. postgres  - initdb once (as an unprivileged user when run as root), start it
               on a free loopback port if it is not running;
3. databases - txpipe_oltp (the RDS stand-in), txpipe_warehouse (the Redshift
               stand-in), txpipe_queue (the orders queue and its DLQ), their
               users and owner (txpipe_cli/local/provision.py);
4. runtime   - the background process that serves the API and the Invoke API,
               polls the queue and runs the schedules; (re)started if dead, hung
               (no answer to /health) or if the settings changed;
5. schema    - migrations applied through the ops function, as on AWS.

`destroy` stops every process it started (found by pid and command line) and
removes every file it created. How a runtime is started, found, asked and stopped is
txpipe_cli/local/processes.py's.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdas.core import defaults
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.health import filesystem, no_space_reported
from txpipe_cli.local import functions, processes
from txpipe_cli.local.pg import PgServer, choose_data_root, find_bindir, server_user
from txpipe_cli.local.provision import provision
from txpipe_cli.local.state import SUPERUSER, LocalState, private_dir, private_home
from txpipe_cli.ops_client import OpsClient

if TYPE_CHECKING:
    from datetime import datetime

    from txpipe_cli.log_records import LogRecord

# The event source mapping's and the sync's options (why each: lambdas/core/defaults.py).
RUNTIME_DEFAULTS = {"pollers": defaults.LOCAL_POLLERS, "batch_size": defaults.STORE_BATCH_SIZE,
                    "batch_window": defaults.LOCAL_BATCH_WINDOW_SECONDS, "sync_max_seconds": defaults.SYNC_MAX_SECONDS}
# Bumped when a runtime of an earlier release must be replaced on the next deploy (here: uvicorn, the
# control socket and per-function database users). A change of the code it runs replaces it too (runtime_code).
RUNTIME_VERSION = 2
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def runtime_code() -> str:
    """A fingerprint of the code a runtime runs (the handlers in lambdas/ and the CLI package it imports): a
    deploy after an upgrade replaces a runtime that still runs the earlier code, settings unchanged or not."""
    digest = hashlib.sha256()
    for package in ("lambdas", "txpipe_cli"):
        for path in sorted((_PACKAGE_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers themselves do: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LocalTarget:
    name = "local"

    def __init__(self, home: Path) -> None:
        self.home = home

    # ------------------------------------------------------------------ helpers

    def _state(self) -> LocalState:
        state = LocalState.load(self.home)
        if state is None:
            raise TxpipeError(f"nothing is deployed under {self.home}", hint="run: txpipe deploy")
        return state

    def _server(self, state: LocalState) -> PgServer:
        return PgServer(Path(state.pg_root), state.pg_port, state.pg_user, find_bindir())

    @property
    def api_url(self) -> str:
        return self._state().api_url

    def deployed_settings(self) -> dict[str, Any]:
        return dict(self._state().settings)

    # ------------------------------------------------------------------ deploy

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One deploy or destroy at a time per home: two at once would race to initdb or delete. The lock file is
        0600 in a 0700 home: flock needs no more than a read handle, so a lock file others can open is one they
        can hold, blocking deploy and destroy (the documented recovery) for as long as they like."""
        state = LocalState.load(self.home) if (self.home / "local.json").is_file() else None
        # An earlier release's server data under home (root ran it as another user): that user must still reach it.
        legacy_pg = bool(state and state.pg_user and state.pg_root and Path(state.pg_root).is_relative_to(self.home))
        private_home(self.home, traversable=legacy_pg)
        path = self.home / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+") as handle:
            owner = os.fstat(fd).st_uid
            if owner != os.getuid():
                raise TxpipeError(f"the lock file {path} belongs to another user (uid {owner})",
                                  hint=f"remove it, then retry: rm {path}")
            os.fchmod(fd, 0o600)  # an earlier release's was 0644
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TxpipeError(f"another txpipe deploy or destroy is running on {self.home}",
                                  hint="wait for it to finish, then retry") from None
            yield

    def api_headers(self) -> dict[str, str]:
        """The API key clients send, as API Gateway's usage plan requires it."""
        return {"x-api-key": self._state().api_key()}

    def deploy(self, settings: PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        with self._exclusive():
            return self._deploy(settings, step)

    def _deploy(self, settings: PipelineSettings, step: Callable[[str], None]) -> dict[str, Any]:
        actions: dict[str, str] = {}
        state = LocalState.load(self.home) or LocalState(home=self.home)
        password = state.ensure_secret()
        state.api_key()

        step("postgres")
        bindir = find_bindir()
        if not state.pg_root:
            state.pg_user = server_user()
            state.pg_root = str(choose_data_root(self.home, state.pg_user))
        server = PgServer(Path(state.pg_root), state.pg_port, state.pg_user, bindir)
        if not server.initialized():
            server.init(SUPERUSER, password)
            actions["postgres"] = "created"
        if server.running():
            actions.setdefault("postgres", "running")
        else:
            if not state.pg_port or not port_free(state.pg_port):
                state.pg_port = server.port = free_port()
            server.start()
            actions.setdefault("postgres", "started")
        state.save()

        step("databases")
        actions["databases"] = provision(state)

        step("runtime")
        actions["runtime"] = self._ensure_runtime(state, settings)

        step("schema")
        applied = OpsClient(self).migrate().applied
        actions["schema"] = (f"migrated oltp {applied['oltp']} warehouse {applied['warehouse']}"
                             if applied["oltp"] or applied["warehouse"] else "up to date")
        unchanged = {"running", "up to date", "present"}
        return {"target": "local", "changed": any(v not in unchanged for v in actions.values()),
                "actions": actions, "api_url": state.api_url, "home": str(self.home),
                "settings": asdict(settings)}

    def _ensure_runtime(self, state: LocalState, settings: PipelineSettings) -> str:
        wanted = asdict(settings)
        running = processes.pid_is_runtime(state.runtime_pid, self.home)
        alive = running and processes.health(state) is not None
        strays = [pid for pid in processes.runtime_pids(self.home) if pid != state.runtime_pid]
        # The runtime's handlers were given the database port at start: a moved server needs a restart.
        current = (state.settings == wanted and state.runtime.get("pg_port") == state.pg_port
                   and state.runtime.get("version") == RUNTIME_VERSION
                   and state.runtime.get("code") == runtime_code())
        if alive and current and not strays:
            return "running"
        if alive:
            action = "updated"
        elif running:  # alive but silent: hung, or a runtime of an earlier release (no control socket)
            action = "updated" if state.runtime.get("version") != RUNTIME_VERSION else "replaced a hung runtime"
        else:
            action = "restarted" if state.runtime_pid else "started"
        processes.stop_runtimes(self.home, state.runtime_pid)
        state.settings = wanted
        # This release's runtime options (none is the operator's to choose): an earlier release's stay not.
        state.runtime = {**state.runtime, **RUNTIME_DEFAULTS, "pg_port": state.pg_port, "version": RUNTIME_VERSION,
                         "code": runtime_code()}
        state.runtime["invoke_socket"] = str(state.choose_invoke_socket())
        if not state.api_port or not port_free(state.api_port):
            state.api_port = free_port()
        state.save()
        proc = processes.spawn(state)
        state.runtime_pid = proc.pid
        state.save()
        processes.wait_until_answering(proc, state)
        return action

    # ------------------------------------------------------------------ status / destroy

    def status(self) -> dict[str, Any]:
        state = self._state()
        server = self._server(state)
        running = processes.pid_is_runtime(state.runtime_pid, self.home)
        health = processes.health(state) if running else None
        runtime_state = "alive" if health is not None else ("hung" if running else "dead")
        result: dict[str, Any] = {
            "target": "local",
            "home": str(self.home),
            "parts": {
                "postgres": {"alive": server.running(), "port": state.pg_port, "data": str(server.data_dir)},
                "runtime": {"alive": health is not None, "state": runtime_state, "pid": state.runtime_pid,
                            "api_url": state.api_url},
            },
            "settings": state.settings,
            # PostgreSQL cannot write on a full disk (nor start again until space is freed): txpipe_cli.health
            "disk": {"filesystems": {"postgres data": filesystem(server.data_dir),
                                     "$TXPIPE_HOME": filesystem(self.home)},
                     "postgres_reported": _no_space_logged(server.log_file)},
        }
        if health is not None:
            result["parts"]["runtime"]["pollers"] = health["pollers"]
            result["schedules"] = health["schedules"]
            try:
                result["pipeline"] = OpsClient(self).status().to_dict()
            except TxpipeError as exc:  # e.g. the server is down: the parts table still tells the story
                result["pipeline_error"] = exc.reason
        return result

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        if LocalState.load(self.home) is None:
            return {"target": "local", "destroyed": False, "reason": f"nothing deployed under {self.home}"}
        with self._exclusive():
            return self._destroy(self._state())

    def _destroy(self, state: LocalState) -> dict[str, Any]:
        stopped = processes.stop_runtimes(self.home, state.runtime_pid)
        if state.pg_root:
            self._server(state).remove()
        socket_dir = state.invoke_socket.parent
        for name in ("local.json", "secrets", "logs", "pg", "run", "build", ".lock"):
            path = self.home / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if socket_dir != self.home / "run" and private_dir(socket_dir):
            shutil.rmtree(socket_dir, ignore_errors=True)
        try:
            self.home.rmdir()
        except OSError:
            pass  # the operator keeps other files there
        return {"target": "local", "destroyed": True, "stopped_runtime": bool(stopped), "stopped_pids": stopped}

    # ------------------------------------------------------------------ functions

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        """Runs a function once in the runtime and returns its answer, waiting at most `timeout` seconds."""
        return functions.invoke(self._state(), function, payload, timeout)

    def logs(self, function: str | None, since: datetime, follow: bool = False, *,
             caught_up: Callable[[], None] = lambda: None) -> Iterator[LogRecord]:
        """What the runtime logged since `since` (one function's, or all); `follow`: then each new record."""
        return functions.logs(self._state(), function, since, follow, caught_up)


def _no_space_logged(log_file: Path, tail: int = 64 * 1024) -> str | None:
    """The last line of the server log's tail in which PostgreSQL says the disk is full, if any."""
    try:
        with open(log_file, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail))
            return no_space_reported(handle.read().decode(errors="replace"))
    except OSError:
        return None

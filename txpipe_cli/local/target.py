"""Deploying, inspecting and tearing down the local target.

`deploy` converges, in order, and each step is a no-op when already true:

1. state     - $TXPIPE_HOME/local.json and a generated database password (0600);
2. postgres  - initdb once (as an unprivileged user when run as root), start it
               on a free loopback port if it is not running;
3. databases - txpipe_oltp (the RDS stand-in), txpipe_warehouse (the Redshift
               stand-in), txpipe_queue (the orders queue and its DLQ);
4. runtime   - the background process that serves the API and the Invoke API,
               polls the queue and runs the schedules; (re)started if dead or
               if the settings changed;
5. schema    - migrations applied through the ops function, as on AWS.

`destroy` stops both processes and removes every file it created.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.pg import PgServer, choose_data_root, find_bindir, server_user
from txpipe_cli.local.state import DATABASES, QUEUE_NAME, SUPERUSER, LocalState

RUNTIME_MODULE = "txpipe_cli.local.runtime"
# The event source mapping: 2 concurrent pollers bound the database load, as maximum concurrency does on AWS.
RUNTIME_DEFAULTS = {"pollers": 2, "batch_size": 10, "batch_window": 0.5, "sync_max_seconds": 100}


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


def pid_is_runtime(pid: int) -> bool:
    """True if pid is alive and is our runtime (a recycled pid must not be killed)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return RUNTIME_MODULE.encode() in cmdline


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

    def _health(self, state: LocalState, timeout: float = 2.0) -> dict[str, Any] | None:
        if not state.api_port:
            return None
        try:
            with urllib.request.urlopen(f"{state.api_url}/health", timeout=timeout) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    @property
    def api_url(self) -> str:
        return self._state().api_url

    def deployed_settings(self) -> dict[str, Any]:
        return dict(self._state().settings)

    # ------------------------------------------------------------------ deploy

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One deploy or destroy at a time per home: two at once would race to initdb or delete."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TxpipeError(f"another txpipe deploy or destroy is running on {self.home}",
                                  hint="wait for it to finish, then retry") from None
            yield

    def api_headers(self) -> dict[str, str]:
        return {}  # loopback only: the local API takes no key

    def deploy(self, settings: PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               plan: bool = False, parameters: dict[str, str] | None = None,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        if plan or parameters:
            raise TxpipeError("--plan and --param apply to --target aws only",
                              hint="the local target's deploy is already idempotent: just run it")
        with self._exclusive():
            return self._deploy(settings, step)

    def _deploy(self, settings: PipelineSettings, step: Callable[[str], None]) -> dict[str, Any]:
        actions: dict[str, str] = {}
        state = LocalState.load(self.home) or LocalState(home=self.home)
        password = state.ensure_secret()

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
        actions["databases"] = self._ensure_databases(state)

        step("runtime")
        actions["runtime"] = self._ensure_runtime(state, settings)

        step("schema")
        migrated = self.invoke("ops", {"action": "migrate"})
        applied = migrated["applied"]
        actions["schema"] = (f"migrated oltp {applied['oltp']} warehouse {applied['warehouse']}"
                             if applied["oltp"] or applied["warehouse"] else "up to date")
        unchanged = {"running", "up to date", "present"}
        return {"target": "local", "changed": any(v not in unchanged for v in actions.values()),
                "actions": actions, "api_url": state.api_url, "home": str(self.home),
                "settings": asdict(settings)}

    def _ensure_databases(self, state: LocalState) -> str:
        import psycopg2
        from psycopg2 import sql

        from lambdas.core.db import Endpoint, connect_postgres
        from lambdas.core.queue import PgQueue

        admin = connect_postgres(Endpoint("127.0.0.1", state.pg_port, "postgres", f"file:{state.secret_file}"),
                                 autocommit=True)
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database")
                existing = {row[0] for row in cur.fetchall()}
                missing = [db for db in DATABASES.values() if db not in existing]
                for db in missing:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        except psycopg2.Error as exc:
            raise TxpipeError(f"could not create the local databases: {exc}".strip()) from None
        finally:
            admin.close()
        queue = PgQueue.from_endpoint(state.endpoint("queue"), QUEUE_NAME)
        queue.create()
        queue.close()
        return f"created {', '.join(missing)}" if missing else "present"

    def _ensure_runtime(self, state: LocalState, settings: PipelineSettings) -> str:
        wanted = asdict(settings)
        alive = pid_is_runtime(state.runtime_pid) and self._health(state) is not None
        # The runtime's handlers were given the database port at start: a moved server needs a restart.
        if alive and state.settings == wanted and state.runtime.get("pg_port") == state.pg_port:
            return "running"
        action = "updated" if alive else ("restarted" if state.runtime_pid else "started")
        if alive:
            self._stop_runtime(state)
        state.settings = wanted
        state.runtime = {**RUNTIME_DEFAULTS, **state.runtime, "pg_port": state.pg_port}
        if not state.api_port or not port_free(state.api_port):
            state.api_port = free_port()
        state.save()
        state.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = state.log_dir / "runtime.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                [sys.executable, "-m", RUNTIME_MODULE, "--home", str(self.home)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=str(self.home),
            )
        state.runtime_pid = proc.pid
        state.save()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise TxpipeError(f"the local runtime exited at start: {tail[0] if tail else proc.returncode}",
                                  hint=f"see {log_path}")
            if self._health(state, timeout=0.5):
                return action
            time.sleep(0.1)
        raise TxpipeError("the local runtime did not answer within 20 s", hint=f"see {log_path}")

    def _stop_runtime(self, state: LocalState) -> bool:
        pid = state.runtime_pid
        if not pid_is_runtime(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while pid_is_runtime(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if pid_is_runtime(pid):
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        return True

    # ------------------------------------------------------------------ status / destroy

    def status(self) -> dict[str, Any]:
        state = self._state()
        server = self._server(state)
        running = pid_is_runtime(state.runtime_pid)
        health = self._health(state) if running else None
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
        }
        if health is not None:
            result["parts"]["runtime"]["pollers"] = health["pollers"]
            result["schedules"] = health["schedules"]
            try:
                result["pipeline"] = self.invoke("ops", {"action": "status"})
            except TxpipeError as exc:  # e.g. the server is down: the parts table still tells the story
                result["pipeline_error"] = exc.reason
        return result

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        if LocalState.load(self.home) is None:
            return {"target": "local", "destroyed": False, "reason": f"nothing deployed under {self.home}"}
        with self._exclusive():
            return self._destroy(self._state())

    def _destroy(self, state: LocalState) -> dict[str, Any]:
        stopped_runtime = self._stop_runtime(state)
        if state.pg_root:
            self._server(state).remove()
        for name in ("local.json", "secrets", "logs", "pg", ".lock"):
            path = self.home / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        try:
            self.home.rmdir()
        except OSError:
            pass  # the operator keeps other files there
        return {"target": "local", "destroyed": True, "stopped_runtime": stopped_runtime}

    # ------------------------------------------------------------------ functions

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        state = self._state()
        request = urllib.request.Request(
            f"{state.api_url}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - loopback
                body = json.loads(resp.read())
                failed = resp.headers.get("X-Amz-Function-Error")
        except urllib.error.URLError as exc:
            raise TxpipeError(f"the local runtime is not answering at {state.api_url} ({exc.reason})",
                              hint="run: txpipe deploy (it restarts what has died)") from None
        if failed:
            raise TxpipeError(f"the {function} function failed: {body.get('errorMessage')}",
                              hint=f"see {state.log_dir / 'runtime.log'}")
        if isinstance(body, dict) and "error" in body:
            raise TxpipeError(body["error"])
        return body


def _reap(pid: int) -> None:
    """Collects the runtime if this process started it, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass

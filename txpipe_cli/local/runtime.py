"""The local runtime: runs the real handlers the way AWS runs them.

One background process, started by `txpipe deploy` and stopped by `txpipe destroy`:

- HTTP API (API Gateway REST proxy, behind an API key): `POST /orders` becomes a proxy
  event for `lambdas.ingest.handler`; its response becomes the HTTP response.
- Lambda Invoke API, on a Unix socket only the operator can open:
  `POST /2015-03-31/functions/<name>/invocations` calls that function with the JSON
  payload (how `sync-now`, `report`... reach the functions). Both are served by uvicorn
  (the app: txpipe_cli/local/server.py; the guarded server: txpipe_cli/guarded_http.py).
- SQS event source mapping: pollers receive batches from the queue, deliver them
  as SQS events to `lambdas.store.handler`, and delete every message except the
  `batchItemFailures` it reports (which come back after the visibility timeout,
  and go to the dead-letter queue after maxReceiveCount receives).
- Schedules: sync every N seconds (EventBridge `rate`), refresh daily at HH:MM in
  the configured time zone (EventBridge Scheduler `cron`).
- `GET /health` (on the Unix socket): liveness and the schedules' last and next runs.

Each function runs with its own environment (its own database user), as on Lambda.
Nothing here holds business logic: it only builds events and calls handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import logging.handlers
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lambdas.core import defaults
from lambdas.core.env import function_environment
from lambdas.core.queue import PgQueue
from lambdas.core.reasons import one_line
from lambdas.functions import FUNCTIONS
from txpipe_cli.config import parse_clock
from txpipe_cli.guarded_http import Limits, build_server, listen_tcp, listen_unix
from txpipe_cli.local.events import LambdaContext, queue_arn, scheduled_event
from txpipe_cli.local.server import App
from txpipe_cli.local.state import QUEUE_NAME, LocalState

log = logging.getLogger("txpipe.runtime")
LOG_BYTES = 10 * 1024 * 1024  # the runtime log rotates at this size, keeping LOG_BACKUPS old files
LOG_BACKUPS = 3


class Functions:
    """Runs a function the way Lambda does: its handler, its own environment, a context with its timeout."""

    def __init__(self, environments: Mapping[str, Mapping[str, str]]) -> None:
        self.environments = environments
        self.handlers = {name: function.load() for name, function in FUNCTIONS.items()}

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        function = FUNCTIONS[name]
        token = current_function.set(name)
        started = time.monotonic()
        try:
            with function_environment(self.environments[name]):
                return self.handlers[name](event, LambdaContext(name, function.timeout_seconds))
        finally:
            # As Lambda's REPORT line, at debug level: what the function did is its own line (lambdas.core.log).
            # ingest and store run too often to log each.
            if name not in QUIET_FUNCTIONS:
                log.debug("invoked in %.0f ms", (time.monotonic() - started) * 1000)
            current_function.reset(token)


# The function a log line comes from (`txpipe logs FUNCTION` filters on it); "runtime" outside any.
current_function: contextvars.ContextVar[str] = contextvars.ContextVar("txpipe_function", default="runtime")
QUIET_FUNCTIONS = frozenset({"ingest", "store"})
# One line a record: `2026-12-01T22:30:58.024Z INFO sync txpipe.function {"level":"INFO",...}`. A function's
# structured line (logger txpipe.function) keeps its JSON record as the message; txpipe_cli/local/logs.py reads
# both back.
LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(function)s %(name)s %(message)s"


class _FunctionField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.function = current_function.get()
        return True


def next_daily(at: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The next HH:MM wall-clock time in tz after now (a daily cron in that time zone)."""
    hour, minute = parse_clock(at)
    local_now = now.astimezone(tz)
    candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local_now:
        candidate = (local_now + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate.astimezone(UTC)


class Schedules:
    """The two schedules, run in one thread; a run that overlaps its next slot is not doubled."""

    def __init__(self, invoke: Callable[[str, dict[str, Any]], Any], sync_every: float, refresh_at: str,
                 tz: ZoneInfo, stop: threading.Event) -> None:
        self.invoke = invoke
        self.sync_every = sync_every
        self.refresh_at = refresh_at
        self.tz = tz
        self.stop = stop
        now = datetime.now(UTC)
        self.next = {"sync": now + timedelta(seconds=sync_every), "refresh": next_daily(refresh_at, tz, now)}
        self.last: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            name, due = min(self.next.items(), key=lambda item: item[1])
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0:
                self.stop.wait(min(wait, 1.0))
                continue
            self._fire(name)
            now = datetime.now(UTC)
            self.next[name] = (now + timedelta(seconds=self.sync_every) if name == "sync"
                               else next_daily(self.refresh_at, self.tz, now))

    def _fire(self, name: str) -> None:
        started = datetime.now(UTC)
        record: dict[str, Any] = {"started_at": started.isoformat()}
        try:
            record["result"] = self.invoke(name, scheduled_event(f"txpipe-{name}", started))
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded and retried next slot
            reason = one_line(exc)
            log.error("scheduled %s failed: %s", name, reason)
            record["error"] = reason
        record["finished_at"] = datetime.now(UTC).isoformat()
        self.last[name] = record

    def describe(self) -> dict[str, Any]:
        return {
            "sync": {"every_seconds": self.sync_every, "next_run_at": self.next["sync"].isoformat(),
                     "last_run": self.last.get("sync")},
            "refresh": {"daily_at": self.refresh_at, "timezone": str(self.tz),
                        "next_run_at": self.next["refresh"].isoformat(), "last_run": self.last.get("refresh")},
        }


class Poller:
    """An SQS event source mapping: batch size, batching window, partial batch failure."""

    def __init__(self, queue: PgQueue, invoke: Callable[[str, dict[str, Any]], Any], batch_size: int,
                 window: float, stop: threading.Event) -> None:
        self.queue, self.invoke, self.batch_size, self.window, self.stop = queue, invoke, batch_size, window, stop
        self.batches = self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the queue or database is down: back off, keep polling
                log.warning("poller: %s", one_line(exc))
                self.queue.close()
                self.stop.wait(1.0)

    def poll_once(self) -> int:
        messages = self.queue.receive(self.batch_size, wait_seconds=1.0)
        deadline = time.monotonic() + self.window
        while messages and len(messages) < self.batch_size and time.monotonic() < deadline:
            more = self.queue.receive(self.batch_size - len(messages), wait_seconds=deadline - time.monotonic())
            messages += more
        if not messages:
            return 0
        try:
            response = self.invoke("store", _sqs_event(messages)) or {}
            failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures", [])}
        except Exception as exc:  # noqa: BLE001 - the whole batch returns to the queue
            log.error("store failed for a batch of %d: %s", len(messages), exc)
            failed = {m.message_id for m in messages}
        ids = {m.message_id for m in messages}
        if not failed <= ids:  # Lambda treats an unknown identifier as a failure of the whole batch
            failed = ids
        self.queue.delete([m.receipt_handle for m in messages if m.message_id not in failed])
        self.batches += 1
        self.failures += len(failed)
        return len(messages)


def _sqs_event(messages: list[Any]) -> dict[str, Any]:
    from lambdas.core.queue import sqs_event

    return sqs_event(messages, queue_arn(QUEUE_NAME), "local")


class Runtime:
    def __init__(self, state: LocalState, limits: Limits | None = None) -> None:
        self.state = state
        self.stop = threading.Event()
        self.functions = Functions({name: state.function_env(name) for name in FUNCTIONS})
        settings = state.settings
        tz = ZoneInfo(settings["timezone"]) if settings.get("timezone") else _local_zone()
        self.schedules = Schedules(self.functions.invoke, float(settings["sync_every_seconds"]),
                                   settings["refresh_at"], tz, self.stop)
        opts = state.runtime
        # The event source mapping polls as its own database user, as AWS's pollers are not the function.
        queue = PgQueue.from_endpoint(state.endpoint("queue", role=state.esm_role), QUEUE_NAME,
                                      visibility_timeout=float(settings["visibility_timeout_seconds"]),
                                      max_receive_count=int(settings["max_receive_count"]))
        # A state written before these options were recorded runs with today's (lambdas/core/defaults.py).
        self.pollers = [Poller(queue, self.functions.invoke, int(opts.get("batch_size", defaults.STORE_BATCH_SIZE)),
                               float(opts.get("batch_window", defaults.LOCAL_BATCH_WINDOW_SECONDS)), self.stop)
                        for _ in range(int(opts.get("pollers", defaults.LOCAL_POLLERS)))]
        self.started_at = datetime.now(UTC)
        self.limits = limits = limits or Limits()
        self.app = App(self.functions.invoke, self.health, state.api_key(), set(FUNCTIONS), limits)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "started_at": self.started_at.isoformat(),
                "pollers": {"count": len(self.pollers), "batches": sum(p.batches for p in self.pollers),
                            "failed_messages": sum(p.failures for p in self.pollers)},
                "schedules": self.schedules.describe()}

    def serve(self) -> None:
        threads = [threading.Thread(target=p.run, name=f"poller-{i}", daemon=True) for i, p in enumerate(self.pollers)]
        threads.append(threading.Thread(target=self.schedules.run, name="schedules", daemon=True))
        sockets = [listen_tcp(self.state.api_port, self.limits.backlog),
                   listen_unix(str(self.state.invoke_socket), self.limits.backlog)]
        server = build_server(self.app, self.limits)
        # uvicorn handles SIGTERM/SIGINT while it serves (a graceful stop), then re-raises the signal to
        # the handler found before it: this one, which stops the pollers and schedules in turn.
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        for thread in threads:
            thread.start()
        log.info("runtime up: orders API on %s, invoke API on %s", self.state.api_url, self.state.invoke_socket)
        try:
            asyncio.run(server.serve(sockets=sockets))
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=10)
            self.app.close()
            Path(self.state.invoke_socket).unlink(missing_ok=True)
            log.info("runtime stopped")


def _local_zone() -> ZoneInfo:
    try:
        return ZoneInfo(os.environ.get("TZ") or Path("/etc/timezone").read_text().strip())
    except Exception:  # noqa: BLE001 - no zone configured: the machine runs on UTC
        return ZoneInfo("UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description="txpipe local runtime (started by `txpipe deploy`)")
    parser.add_argument("--home", required=True, type=Path)
    args = parser.parse_args()
    # Everything the runtime creates is the operator's alone: its log (and each file it rotates to), the
    # control socket.
    os.umask(0o077)
    state = LocalState.load(args.home)
    if state is None:
        raise SystemExit(f"no local deployment under {args.home}")
    _log_to(state.log_dir / "runtime.log")
    Runtime(state).serve()


def _log_to(path: Path) -> None:
    """The runtime's log: 0600 (it names orders and databases), rotated by size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS)
    os.chmod(path, 0o600)  # a log from an earlier release may have been 0644
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime  # UTC, so `txpipe logs --since` reads every line the same way
    handler.setFormatter(formatter)
    handler.addFilter(_FunctionField())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Debug lines too: the functions' own (lambdas.core.log: the CLI's reads through ops) and the invocations'
    # REPORT lines. `txpipe logs` hides them unless asked (--debug).
    log.setLevel(logging.DEBUG)


if __name__ == "__main__":
    main()

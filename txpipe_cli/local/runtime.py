"""The local runtime: runs the real handlers the way AWS runs them.

One background process, started by `txpipe deploy` and stopped by `txpipe destroy`:

- HTTP API (API Gateway REST proxy): `POST /orders` becomes a proxy event for
  `lambdas.ingest.handler`; its response becomes the HTTP response.
- Lambda Invoke API: `POST /2015-03-31/functions/<name>/invocations` calls that
  function with the JSON payload (how `sync-now`, `report`... reach the functions).
- SQS event source mapping: pollers receive batches from the queue, deliver them
  as SQS events to `lambdas.store.handler`, and delete every message except the
  `batchItemFailures` it reports (which come back after the visibility timeout,
  and go to the dead-letter queue after maxReceiveCount receives).
- Schedules: sync every N seconds (EventBridge `rate`), refresh daily at HH:MM in
  the configured time zone (EventBridge Scheduler `cron`).
- `GET /health`: liveness and the schedules' last and next runs.

Nothing here holds business logic: it only builds events and calls handlers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lambdas.core.orders import MAX_BODY_BYTES
from lambdas.core.queue import PgQueue
from txpipe_cli.config import parse_clock
from txpipe_cli.local.events import LambdaContext, api_gateway_event, queue_arn, scheduled_event
from txpipe_cli.local.state import QUEUE_NAME, LocalState

log = logging.getLogger("txpipe.runtime")

FUNCTIONS = {"ingest": ("lambdas.ingest", 30), "store": ("lambdas.store", 60), "sync": ("lambdas.sync", 300),
             "refresh": ("lambdas.refresh", 300), "ops": ("lambdas.ops", 300)}
INVOKE_PREFIX = "/2015-03-31/functions/"
DRAIN_LIMIT = 10 * 1024 * 1024


class FunctionError(Exception):
    """A handler raised; carried back to the caller the way Lambda reports it."""


def invoke(name: str, event: dict[str, Any]) -> Any:
    module_name, timeout = FUNCTIONS[name]
    handler = importlib.import_module(module_name).handler
    return handler(event, LambdaContext(name, timeout))


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

    def __init__(self, sync_every: float, refresh_at: str, tz: ZoneInfo, stop: threading.Event) -> None:
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
            record["result"] = invoke(name, scheduled_event(f"txpipe-{name}", started))
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded and retried next slot
            log.error("scheduled %s failed: %s", name, exc)
            record["error"] = str(exc)
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

    def __init__(self, queue: PgQueue, batch_size: int, window: float, stop: threading.Event) -> None:
        self.queue, self.batch_size, self.window, self.stop = queue, batch_size, window, stop
        self.batches = self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the queue or database is down: back off, keep polling
                log.exception("poller error")
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
            response = invoke("store", _sqs_event(messages)) or {}
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
    def __init__(self, state: LocalState) -> None:
        self.state = state
        self.stop = threading.Event()
        settings = state.settings
        tz = ZoneInfo(settings["timezone"]) if settings.get("timezone") else _local_zone()
        self.schedules = Schedules(float(settings["sync_every_seconds"]), settings["refresh_at"], tz, self.stop)
        opts = state.runtime
        queue = PgQueue.from_endpoint(state.endpoint("queue"), QUEUE_NAME,
                                      visibility_timeout=float(settings["visibility_timeout_seconds"]),
                                      max_receive_count=int(settings["max_receive_count"]))
        self.pollers = [Poller(queue, int(opts.get("batch_size", 100)), float(opts.get("batch_window", 0.5)),
                               self.stop) for _ in range(int(opts.get("pollers", 2)))]
        self.started_at = datetime.now(UTC)
        self.server = ThreadingHTTPServer(("127.0.0.1", state.api_port), _make_handler(self))
        self.server.daemon_threads = True

    def health(self) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "started_at": self.started_at.isoformat(),
                "pollers": {"count": len(self.pollers), "batches": sum(p.batches for p in self.pollers),
                            "failed_messages": sum(p.failures for p in self.pollers)},
                "schedules": self.schedules.describe()}

    def serve(self) -> None:
        threads = [threading.Thread(target=p.run, name=f"poller-{i}", daemon=True) for i, p in enumerate(self.pollers)]
        threads.append(threading.Thread(target=self.schedules.run, name="schedules", daemon=True))
        for thread in threads:
            thread.start()
        signal.signal(signal.SIGTERM, lambda *_: self.shutdown())
        signal.signal(signal.SIGINT, lambda *_: self.shutdown())
        log.info("runtime up on %s", self.state.api_url)
        self.server.serve_forever(poll_interval=0.2)
        for thread in threads:
            thread.join(timeout=10)
        log.info("runtime stopped")

    def shutdown(self) -> None:
        self.stop.set()
        threading.Thread(target=self.server.shutdown, daemon=True).start()


def _local_zone() -> ZoneInfo:
    try:
        return ZoneInfo(os.environ.get("TZ") or Path("/etc/timezone").read_text().strip())
    except Exception:  # noqa: BLE001 - no zone configured: the machine runs on UTC
        return ZoneInfo("UTC")


def _make_handler(runtime: Runtime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without TCP_NODELAY each keep-alive response
        # waits ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True
        server_version = "txpipe-local"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # one line per request would drown the log under load

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._reply(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _body(self, limit: int) -> bytes | None:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
                return None
            if int(length) > limit:
                # Drain a moderately oversized body so the client reads a 413 instead of a broken pipe;
                # anything past API Gateway's own 10 MiB cap is cut off unread.
                remaining = int(length) if int(length) <= DRAIN_LIMIT else 0
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:  # the client gave up
                        break
                    remaining -= len(chunk)
                self.close_connection = True  # an unread body must not be parsed as the next request
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           {"error": f"body of {length} bytes exceeds the {limit}-byte limit"})
                return None
            return self.rfile.read(int(length))

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path == "/health":
                self._json(200, runtime.health())
            else:
                self._json(404, {"error": f"no route for GET {self.path}"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            if self.path in ("/orders", "/orders/"):
                body = self._body(MAX_BODY_BYTES)
                if body is None:
                    return
                event = api_gateway_event("POST", "/orders", dict(self.headers.items()), body)
                try:
                    result = invoke("ingest", event)
                except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
                    log.error("ingest failed:\n%s", traceback.format_exc())
                    self._json(502, {"message": "Internal server error"})
                    return
                self._reply(result["statusCode"], result.get("body", "").encode(), result.get("headers"))
            elif self.path.startswith(INVOKE_PREFIX) and self.path.endswith("/invocations"):
                self._invoke(self.path[len(INVOKE_PREFIX):-len("/invocations")])
            else:
                self._json(404, {"error": f"no route for POST {self.path}"})

        def _invoke(self, name: str) -> None:
            if name not in FUNCTIONS:
                self._json(404, {"errorType": "ResourceNotFoundException", "errorMessage": f"no function {name!r}"})
                return
            body = self._body(6 * 1024 * 1024)  # Lambda's synchronous payload limit
            if body is None:
                return
            try:
                result = invoke(name, json.loads(body or b"{}"))
            except Exception as exc:  # noqa: BLE001 - reported like Lambda: 200 with X-Amz-Function-Error
                log.error("%s failed:\n%s", name, traceback.format_exc())
                self._json(200, {"errorType": type(exc).__name__, "errorMessage": str(exc)},
                           {"X-Amz-Function-Error": "Unhandled"})
                return
            self._json(200, result)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="txpipe local runtime (started by `txpipe deploy`)")
    parser.add_argument("--home", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    state = LocalState.load(args.home)
    if state is None:
        raise SystemExit(f"no local deployment under {args.home}")
    os.environ.update(state.function_env())
    Runtime(state).serve()


if __name__ == "__main__":
    main()

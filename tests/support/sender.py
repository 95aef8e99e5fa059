"""A fake orders API and its client, for the tests of `txpipe send` (tests/unit/test_sender*.py).

`FakeApi` is the orders API in miniature: the real API's validator, each order_id stored once (as the real store
does), failures on demand; `serve` serves one on a free loopback port; `fake_client` is an ApiClient on one whose
backoff records its sleeps (`Sleeps`) instead of sleeping; `served_for_send` serves one as `txpipe send`'s
target. `order` and `order_file` build what is sent.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lambdas.core.orders import RequestRejected, parse_json, validate_items
from txpipe_cli.sender import ApiClient, OrderFile


def order(n: int, **extra: Any) -> dict[str, Any]:
    return {"customer_id": n, "type": "cheese", "qty": 1, "retail_price": 12.99, **extra}


def order_file(items: list[Any], kind: str = "index") -> OrderFile:
    """An OrderFile as read_orders would make it from a JSON array (or NDJSON without blank lines)."""
    start = 1 if kind == "line" else 0
    return OrderFile(items, list(range(start, start + len(items))), kind)


class FakeApi:
    """The orders API in miniature: the real validator, each order_id stored once, failures on demand."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.forced: deque[int | tuple[int, dict[str, Any]]] = deque()  # answers next, whatever the body
        self.lock = threading.Lock()
        self.stored: dict[str, dict[str, Any]] = {}  # order_id -> order: INSERT ... ON CONFLICT DO NOTHING
        self.received: Counter[str] = Counter()  # order_id -> how many accepted requests carried it
        self.fail_after: int | None = None  # answer 503 to every request once this many were served
        self.served = 0
        self.extra_rule: Callable[[dict[str, Any]], str | None] | None = None  # a server of another version
        self.cap: int | None = None  # list at most this many errors, with "error_count" (as a capped API does)

    def answer(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.posts.append((path, body))
            self.headers.append(headers)
            if self.forced:
                forced = self.forced.popleft()
                return forced if isinstance(forced, tuple) else (forced, {"error": f"forced {forced}"})
            if self.fail_after is not None and self.served >= self.fail_after:
                return 503, {"error": "the order queue is unavailable"}
            self.served += 1
            if path != "/orders":
                return 404, {"error": "not found"}
            return self._ingest(raw)

    def _ingest(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            data = parse_json(raw)
        except RequestRejected as rejected:
            return rejected.status, {"error": "request refused", "errors": [e.to_dict() for e in rejected.errors]}
        errors: list[dict[str, Any]] = []
        try:
            validate_items(data)
        except RequestRejected as rejected:
            errors = [e.to_dict() for e in rejected.errors]
        items = data if isinstance(data, list) else [data]
        if self.extra_rule and not any(e["index"] is None for e in errors):
            errors += [{"index": i, "field": "customer_id", "reason": reason} for i, item in enumerate(items)
                       if isinstance(item, dict) and (reason := self.extra_rule(item))]
        if errors:
            errors.sort(key=lambda e: -1 if e["index"] is None else e["index"])
            answer: dict[str, Any] = {"error": "request refused; nothing was enqueued", "errors": errors}
            if self.cap is not None and len(errors) > self.cap:
                answer.update(errors=errors[:self.cap], error_count=len(errors))
            return 400, answer
        ids = [item.get("order_id") or str(uuid.uuid4()) for item in items]
        for order_id, item in zip(ids, items, strict=True):
            self.stored.setdefault(order_id, item)
            self.received[order_id] += 1
        return 202, {"accepted": len(items), "order_ids": ids}

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.posts]


def make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway does

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = api.answer(self.path, raw, {k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(fake: FakeApi) -> Iterator[str]:
    """Serves `fake` on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def served_for_send(monkeypatch: Any, headers: dict[str, str]) -> Iterator[tuple[FakeApi, str]]:
    """A FakeApi served, and `txpipe send`'s target stubbed to hand out `headers` as its API headers (its URL is
    never used: the tests pass --url); yields the fake and its URL."""
    from types import SimpleNamespace

    from txpipe_cli.commands import orders as orders_command

    target = SimpleNamespace(api_url="http://127.0.0.1:1", api_headers=lambda: headers)
    monkeypatch.setattr(orders_command, "get_target", lambda name, stage: target)
    fake = FakeApi()
    with serve(fake) as url:
        yield fake, url


class Sleeps(list):
    """A sleep() that records its arguments instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@contextmanager
def fake_client() -> Iterator[tuple[ApiClient, FakeApi, Sleeps]]:
    """A FakeApi being served and an ApiClient on it whose backoff does not sleep."""
    fake = FakeApi()
    sleeps = Sleeps()
    with serve(fake) as url:
        api_client = ApiClient(url, timeout=5, sleep=sleeps)
        try:
            yield api_client, fake, sleeps
        finally:
            api_client.close()

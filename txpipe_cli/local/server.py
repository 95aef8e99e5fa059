"""The local runtime's HTTP server: uvicorn serving one small ASGI app on two sockets.

- TCP 127.0.0.1:<api port>, the orders API as API Gateway serves it: every request needs
  the `x-api-key` header (403 JSON without it); `POST /orders` runs the ingest function;
  other methods get 405 JSON with `Allow`; other paths 404 JSON.
- A Unix socket only its owner can open (0600 in a 0700 directory): the Lambda Invoke API
  (`POST /2015-03-31/functions/<name>/invocations`) and `GET /health`, for the operator's
  txpipe commands and nobody else.

What a flood meets (each limit in `Limits`): a listen backlog of 2048; a connection that
does not finish its request headers in time gets 408 and is closed, an idle keep-alive
one is closed; a body must arrive within its deadline (408) and within the size limit
(413, after the body has been read and thrown away, so the client reads the 413 instead
of a reset); at most `in_flight` requests are admitted at once, a request waiting longer
than `admission_wait` gets 503 with Retry-After; the functions run on small fixed thread
pools, so the database connections they hold are bounded too (one per thread).
Malformed HTTP gets a 400 JSON answer (uvicorn's own protocol, answering in JSON).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lambdas.core.orders import MAX_BODY_BYTES

log = logging.getLogger("txpipe.server")

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_BODY_LIMIT = 6 * 1024 * 1024  # Lambda's synchronous payload limit
FORBIDDEN = {"message": "Forbidden"}  # API Gateway's answer to a missing or wrong API key


@dataclass(frozen=True)
class Limits:
    backlog: int = 2048
    header_seconds: float = 10.0  # a request's line and headers must arrive within this
    keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this
    body_seconds: float = 30.0  # a request body must arrive within this
    drain_seconds: float = 60.0  # reading (and dropping) an oversized body, so the 413 reaches the client
    in_flight: int = 32  # requests admitted at once (each holds at most one body of MAX_BODY_BYTES)
    admission_wait: float = 5.0  # longest wait for admission before a 503
    api_workers: int = 4  # threads running ingest: its queue connections, shared by all API requests
    invoke_workers: int = 4  # threads running invoked functions (sync-now, report, ops...)
    max_connections: int = 4096  # uvicorn's last-resort guard (503 beyond it)


class _BodyTimeout(Exception):
    pass


class _ClientGone(Exception):
    pass


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int, deadline: float,
                     drain_deadline: float) -> bytes | None:
    """The request body, or None when it is larger than limit (then it was read to the end and dropped)."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = (deadline if size <= limit else drain_deadline) - loop.time()
        if remaining <= 0:
            raise _BodyTimeout
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            raise _BodyTimeout from None
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        size += len(body)
        if size <= limit:
            chunks.append(body)
        elif chunks:
            chunks = []  # too large: drop what was kept, keep reading to the end
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else None


async def respond(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: bytes,
                   headers: dict[str, str] | None = None, close: bool = False) -> None:
    merged = {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
    merged["content-length"] = str(len(body))
    if close:
        merged["connection"] = "close"
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in merged.items()]})
    await send({"type": "http.response.body", "body": body})


def release_memory() -> None:
    """Hands the heap memory freed by large requests back to the system (glibc's malloc_trim). Python
    frees a parsed 1 MiB body's objects, but glibc keeps the pages for reuse, so after a burst of large
    bodies the process would stay at its peak size. A no-op where there is no glibc."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


LARGE_BODY = 64 * 1024  # a request this large is followed, once the burst is over, by release_memory()


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


class App:
    """The ASGI app. `invoke(name, event)` runs a function and returns its result (or raises);
    `health()` describes the runtime. Both are the runtime's; nothing here holds business logic."""

    def __init__(self, invoke: Callable[[str, dict[str, Any]], Any], health: Callable[[], dict[str, Any]],
                 api_key: str, functions: set[str], limits: Limits = Limits()) -> None:
        self.invoke, self.health, self.functions, self.limits = invoke, health, functions, limits
        self._api_key = api_key.encode()
        self.api_pool = ThreadPoolExecutor(limits.api_workers, thread_name_prefix="txpipe-api")
        self.invoke_pool = ThreadPoolExecutor(limits.invoke_workers, thread_name_prefix="txpipe-invoke")
        self._admission: asyncio.Semaphore | None = None
        self._release: asyncio.TimerHandle | None = None

    def close(self) -> None:
        self.api_pool.shutdown(wait=True, cancel_futures=True)
        self.invoke_pool.shutdown(wait=True, cancel_futures=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self._admission is None:
            self._admission = asyncio.Semaphore(self.limits.in_flight)
        try:
            await asyncio.wait_for(self._admission.acquire(), self.limits.admission_wait)
        except TimeoutError:
            await respond(send, 503, _json({"message": "the API is busy; retry shortly"}), {"Retry-After": "1"})
            return
        try:
            if scope.get("http_version") not in ("1.0", "1.1"):  # h11 parses an "HTTP/2.0" line as one
                await respond(send, 505, _json({"message": "only HTTP/1.1 is served here"}), close=True)
                return
            server = scope.get("server") or ("", 0)
            if server[1] is None:  # a Unix socket: the operator's control socket
                await self._control(scope, receive, send)
            else:
                await self._api(scope, receive, send)
        except _BodyTimeout:
            await respond(send, 408, _json({"message": "the request body did not arrive in time"}), close=True)
        except _ClientGone:
            pass  # nobody is left to answer
        finally:
            self._admission.release()

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"x-api-key", b""), self._api_key):
            await respond(send, 403, _json(FORBIDDEN))
            return
        path, method = scope["path"], scope["method"]
        if path not in ("/orders", "/orders/"):
            await respond(send, 404, _json({"message": f"no route for {path}"}))
            return
        if method != "POST":
            await respond(send, 405, _json({"message": f"{method} is not allowed on /orders; use POST"}),
                           {"Allow": "POST"})
            return
        body = await self._body(receive, MAX_BODY_BYTES)
        if body is None:
            await respond(send, 413, _json({"error": f"the body exceeds the {MAX_BODY_BYTES}-byte limit",
                                             "errors": [], "error_count": 0}), close=True)
            return
        event = _api_gateway_event(scope, body)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.api_pool, self.invoke, "ingest", event)
        except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
            log.exception("ingest failed")
            await respond(send, 502, _json({"message": "Internal server error"}))
            return
        finally:
            if len(body) >= LARGE_BODY:
                self._release_memory_soon(loop)
        await respond(send, int(result["statusCode"]), result.get("body", "").encode(), result.get("headers"))

    def _release_memory_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """release_memory() half a second after the last large request (one call per burst)."""
        if self._release is not None:
            self._release.cancel()
        self._release = loop.call_later(0.5, lambda: loop.run_in_executor(None, release_memory))

    async def _control(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health" and method == "GET":
            await respond(send, 200, _json(self.health()))
            return
        if not (path.startswith(INVOKE_PREFIX) and path.endswith("/invocations")):
            await respond(send, 404, _json({"message": f"no route for {method} {path}"}))
            return
        if method != "POST":
            await respond(send, 405, _json({"message": "use POST"}), {"Allow": "POST"})
            return
        name = path[len(INVOKE_PREFIX):-len("/invocations")]
        if name not in self.functions:
            await respond(send, 404, _json({"errorType": "ResourceNotFoundException",
                                             "errorMessage": f"no function {name!r}"}))
            return
        body = await self._body(receive, INVOKE_BODY_LIMIT)
        if body is None:
            await respond(send, 413, _json({"errorType": "RequestTooLargeException",
                                             "errorMessage": "payload over 6 MB"}), close=True)
            return
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            await respond(send, 400, _json({"errorType": "InvalidRequestContentException",
                                             "errorMessage": "payload is not JSON"}))
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.invoke_pool, self.invoke, name, event)
        except Exception as exc:  # noqa: BLE001 - reported like Lambda: 200 with X-Amz-Function-Error
            log.exception("%s failed", name)
            await respond(send, 200, _json({"errorType": type(exc).__name__, "errorMessage": str(exc)}),
                           {"X-Amz-Function-Error": "Unhandled"})
            return
        await respond(send, 200, json.dumps(result, default=str).encode())

    async def _body(self, receive: Any, limit: int) -> bytes | None:
        now = asyncio.get_running_loop().time()
        return await _read_body(receive, limit, now + self.limits.body_seconds, now + self.limits.drain_seconds)


def _api_gateway_event(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    from txpipe_cli.local.events import api_gateway_event

    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    return api_gateway_event(scope["method"], "/orders", headers, body)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's headers and JSON for malformed
    requests. uvicorn arms its keep-alive timer only between requests and resets it on every byte, so
    alone it would hold a connection that trickles a header forever."""

    header_seconds = Limits.header_seconds
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: the app's deadlines take over
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        body = _json({"message": "the request headers did not arrive in time"})
        # Written raw: h11 will not send a response to a request it has not seen in full.
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = _json({"message": f"malformed HTTP request: {msg}"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # h11 cannot frame a response here (e.g. an HTTP/2 line): write it raw
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
                                 + b"\r\n" + body)
        self.transport.close()


def listen_tcp(port: int, backlog: int) -> socket.socket:
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every keep-alive response (headers and body written apart) waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    sock.set_inheritable(False)
    return sock


def listen_unix(path: str, backlog: int) -> socket.socket:
    """A Unix socket at path, 0600: only its owner (the operator) can connect."""
    import os

    if os.path.islink(path):
        raise RuntimeError(f"refusing to replace a symlink at {path}")
    if os.path.exists(path):
        os.unlink(path)  # a stale socket from a runtime that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return sock


def build_server(app: App, limits: Limits = Limits()) -> Any:
    import uvicorn

    protocol = type("Protocol", (GuardedH11Protocol,), {"header_seconds": limits.header_seconds})
    config = uvicorn.Config(app, http=protocol, lifespan="off", access_log=False, log_level="error",
                            timeout_keep_alive=limits.keep_alive_seconds, backlog=limits.backlog,
                            limit_concurrency=limits.max_connections, server_header=False, date_header=False,
                            ws="none", interface="asgi3", timeout_graceful_shutdown=10)
    return uvicorn.Server(config)

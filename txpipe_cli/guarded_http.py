"""The guarded HTTP server the local runtime's API and invoke sockets and the dashboard all serve on: uvicorn's
HTTP/1.1 with the limits a flood needs (`Limits`), the body reader that enforces them, JSON answers for what
uvicorn would answer in text, and the listening sockets.

What a flood meets (each limit in `Limits`): a listen backlog of 2048; a connection that does not finish its
request headers in time gets 408 and is closed, an idle keep-alive one is closed; a body must arrive within its
deadline (408) and within the size limit (413, after the body has been read and thrown away, so the client reads
the 413 instead of a reset). Malformed HTTP gets a 400 JSON answer.

No route and no business logic here: the apps that serve on it are txpipe_cli/local/server.py (the orders API
and the Invoke API) and txpipe_cli/dashboard/server.py. Anything in txpipe_cli may import it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


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


DEFAULT_LIMITS = Limits()


class BodyTimeout(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int, deadline: float,
                     drain_deadline: float) -> bytes | None:
    """The request body, or None when it is larger than limit (then it was read to the end and dropped)."""
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = (deadline if size <= limit else drain_deadline) - loop.time()
        if remaining <= 0:
            raise BodyTimeout
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            raise BodyTimeout from None
        if message["type"] == "http.disconnect":
            raise ClientGone
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


def json_bytes(data: Any) -> bytes:
    return json.dumps(data).encode()


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
        body = json_bytes({"message": "the request headers did not arrive in time"})
        # Written raw: h11 will not send a response to a request it has not seen in full.
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = json_bytes({"message": f"malformed HTTP request: {msg}"})
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


def build_server(app: Any, limits: Limits = DEFAULT_LIMITS) -> Any:
    import uvicorn

    protocol = type("Protocol", (GuardedH11Protocol,), {"header_seconds": limits.header_seconds})
    config = uvicorn.Config(app, http=protocol, lifespan="off", access_log=False, log_level="error",
                            timeout_keep_alive=limits.keep_alive_seconds, backlog=limits.backlog,
                            limit_concurrency=limits.max_connections, server_header=False, date_header=False,
                            ws="none", interface="asgi3", timeout_graceful_shutdown=10)
    return uvicorn.Server(config)

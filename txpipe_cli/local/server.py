"""The local runtime's ASGI app, served on two sockets by the guarded server (txpipe_cli/guarded_http.py).

- TCP 127.0.0.1:<api port>, the orders API as API Gateway serves it: every request needs
  the `x-api-key` header (403 JSON without it); `POST /orders` runs the ingest function;
  other methods get 405 JSON with `Allow`; other paths 404 JSON.
- A Unix socket only its owner can open (0600 in a 0700 directory): the Lambda Invoke API
  (`POST /2015-03-31/functions/<name>/invocations`) and `GET /health`, for the operator's
  txpipe commands and nobody else.

Beyond the server's own guards (headers, bodies, malformed HTTP): at most `in_flight` requests are admitted at
once, a request waiting longer than `admission_wait` gets 503 with Retry-After; the functions run on small fixed
thread pools, so the database connections they hold are bounded too (one per thread).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambdas.core.orders import MAX_BODY_BYTES
from txpipe_cli.guarded_http import (
    DEFAULT_LIMITS,
    LARGE_BODY,
    BodyTimeout,
    ClientGone,
    Limits,
    json_bytes,
    read_body,
    release_memory,
    respond,
)

log = logging.getLogger("txpipe.server")

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_BODY_LIMIT = 6 * 1024 * 1024  # Lambda's synchronous payload limit
FORBIDDEN = {"message": "Forbidden"}  # API Gateway's answer to a missing or wrong API key


class App:
    """The ASGI app. `invoke(name, event)` runs a function and returns its result (or raises);
    `health()` describes the runtime. Both are the runtime's; nothing here holds business logic."""

    def __init__(self, invoke: Callable[[str, dict[str, Any]], Any], health: Callable[[], dict[str, Any]],
                 api_key: str, functions: set[str], limits: Limits = DEFAULT_LIMITS) -> None:
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
            await respond(send, 503, json_bytes({"message": "the API is busy; retry shortly"}), {"Retry-After": "1"})
            return
        try:
            if scope.get("http_version") not in ("1.0", "1.1"):  # h11 parses an "HTTP/2.0" line as one
                await respond(send, 505, json_bytes({"message": "only HTTP/1.1 is served here"}), close=True)
                return
            server = scope.get("server") or ("", 0)
            if server[1] is None:  # a Unix socket: the operator's control socket
                await self._control(scope, receive, send)
            else:
                await self._api(scope, receive, send)
        except BodyTimeout:
            await respond(send, 408, json_bytes({"message": "the request body did not arrive in time"}), close=True)
        except ClientGone:
            pass  # nobody is left to answer
        finally:
            self._admission.release()

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"x-api-key", b""), self._api_key):
            await respond(send, 403, json_bytes(FORBIDDEN))
            return
        path, method = scope["path"], scope["method"]
        if path not in ("/orders", "/orders/"):
            await respond(send, 404, json_bytes({"message": f"no route for {path}"}))
            return
        if method != "POST":
            await respond(send, 405, json_bytes({"message": f"{method} is not allowed on /orders; use POST"}),
                           {"Allow": "POST"})
            return
        body = await self._body(receive, MAX_BODY_BYTES)
        if body is None:
            await respond(send, 413, json_bytes({"error": f"the body exceeds the {MAX_BODY_BYTES}-byte limit",
                                             "errors": [], "error_count": 0}), close=True)
            return
        event = _api_gateway_event(scope, body)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.api_pool, self.invoke, "ingest", event)
        except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
            log.exception("ingest failed")
            await respond(send, 502, json_bytes({"message": "Internal server error"}))
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
            await respond(send, 200, json_bytes(self.health()))
            return
        if not (path.startswith(INVOKE_PREFIX) and path.endswith("/invocations")):
            await respond(send, 404, json_bytes({"message": f"no route for {method} {path}"}))
            return
        if method != "POST":
            await respond(send, 405, json_bytes({"message": "use POST"}), {"Allow": "POST"})
            return
        name = path[len(INVOKE_PREFIX):-len("/invocations")]
        if name not in self.functions:
            await respond(send, 404, json_bytes({"errorType": "ResourceNotFoundException",
                                             "errorMessage": f"no function {name!r}"}))
            return
        body = await self._body(receive, INVOKE_BODY_LIMIT)
        if body is None:
            await respond(send, 413, json_bytes({"errorType": "RequestTooLargeException",
                                             "errorMessage": "payload over 6 MB"}), close=True)
            return
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            await respond(send, 400, json_bytes({"errorType": "InvalidRequestContentException",
                                             "errorMessage": "payload is not JSON"}))
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.invoke_pool, self.invoke, name, event)
        except Exception as exc:  # noqa: BLE001 - reported like Lambda: 200 with X-Amz-Function-Error
            log.exception("%s failed", name)
            await respond(send, 200, json_bytes({"errorType": type(exc).__name__, "errorMessage": str(exc)}),
                           {"X-Amz-Function-Error": "Unhandled"})
            return
        await respond(send, 200, json.dumps(result, default=str).encode())

    async def _body(self, receive: Any, limit: int) -> bytes | None:
        now = asyncio.get_running_loop().time()
        return await read_body(receive, limit, now + self.limits.body_seconds, now + self.limits.drain_seconds)


def _api_gateway_event(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    from txpipe_cli.local.events import api_gateway_event

    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    return api_gateway_event(scope["method"], "/orders", headers, body)



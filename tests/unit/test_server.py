"""The local API's ASGI app (txpipe_cli/local/server.py), driven in-process with ASGI messages."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from txpipe_cli.local.server import App, Limits

KEY = "k" * 40


def scope(method: str = "POST", path: str = "/orders", key: str | None = KEY, unix: bool = False) -> dict[str, Any]:
    headers = [(b"x-api-key", key.encode())] if key is not None else []
    return {"type": "http", "http_version": "1.1", "method": method, "path": path, "headers": headers,
            "server": ("/run/invoke.sock", None) if unix else ("127.0.0.1", 8080)}


def call(app: App, scope_: dict[str, Any], chunks: list[bytes] | None = None, *, stall: bool = False
         ) -> tuple[int, dict[str, str], Any, int]:
    """Runs one request; returns (status, headers, JSON body, how many body chunks the app read)."""
    async def run() -> tuple[int, dict[str, str], Any, int]:
        pending = list(chunks or [b""])
        read = 0
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal read
            if stall:
                await asyncio.sleep(3600)
            read += 1
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope_, receive, send)
        start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, json.loads(body), read

    return asyncio.run(run())


def make(invoke: Any = None, **limits: Any) -> App:
    return App(invoke or (lambda name, event: {"statusCode": 202, "body": json.dumps({"name": name})}),
               lambda: {"ok": True}, KEY, {"ingest", "sync"}, Limits(**limits))


def test_a_missing_or_wrong_key_is_403_before_anything_is_read() -> None:
    for key in (None, "", KEY[:-1]):
        status, _, body, read = call(make(), scope(key=key), [b"{}"])
        assert (status, body, read) == (403, {"message": "Forbidden"}, 0)


def test_a_valid_request_reaches_ingest_with_an_api_gateway_event() -> None:
    seen: list[dict[str, Any]] = []
    app = make(lambda name, event: seen.append(event) or {"statusCode": 202, "body": "{}"})
    assert call(app, scope(), [b'{"a"', b": 1}"])[0] == 202
    assert seen[0]["httpMethod"] == "POST" and seen[0]["isBase64Encoded"] is True


def test_an_oversized_body_is_read_to_its_end_then_413() -> None:
    chunks = [b"x" * 65536] * 40  # 2.5 MiB, over the 1 MiB limit
    status, headers, body, read = call(make(), scope(), chunks)
    assert (status, read, headers["connection"]) == (413, 40, "close")
    assert "exceeds" in body["error"]


def test_a_body_that_stops_arriving_is_408() -> None:
    status, headers, body, _ = call(make(body_seconds=0.2), scope(), stall=True)
    assert (status, headers["connection"]) == (408, "close") and "in time" in body["message"]


def test_a_full_house_answers_503_with_retry_after() -> None:
    release = threading.Event()

    def slow(name: str, event: dict[str, Any]) -> dict[str, Any]:
        release.wait(5)
        return {"statusCode": 202, "body": "{}"}

    app = make(slow, in_flight=1, admission_wait=0.2)

    async def both() -> list[Any]:
        loop = asyncio.get_running_loop()
        first = loop.run_in_executor(None, call, app, scope(), [b"{}"])
        await asyncio.sleep(0.3)
        second = await loop.run_in_executor(None, call, app, scope(), [b"{}"])
        release.set()
        return [await first, second]

    first, second = asyncio.run(both())
    assert first[0] == 202
    assert (second[0], second[1]["retry-after"]) == (503, "1")


def test_the_control_socket_serves_health_and_invocations() -> None:
    assert call(make(), scope("GET", "/health", key=None, unix=True))[2] == {"ok": True}
    ok = call(make(lambda name, event: {"ran": name}), scope("POST", "/2015-03-31/functions/sync/invocations",
                                                              key=None, unix=True), [b"{}"])
    assert ok[:3:2] == (200, {"ran": "sync"})


def test_a_failing_function_is_reported_like_lambda() -> None:
    def boom(name: str, event: dict[str, Any]) -> None:
        raise RuntimeError("no database")

    status, headers, body, _ = call(make(boom), scope("POST", "/2015-03-31/functions/sync/invocations", None, True),
                                    [b"{}"])
    assert (status, headers["x-amz-function-error"], body["errorMessage"]) == (200, "Unhandled", "no database")


def test_unknown_functions_and_routes_are_404() -> None:
    assert call(make(), scope("POST", "/2015-03-31/functions/nope/invocations", None, True), [b"{}"])[0] == 404
    assert call(make(), scope("POST", "/admin"), [b"{}"])[0] == 404


def test_api_connections_get_tcp_nodelay() -> None:
    """Each accepted connection has TCP_NODELAY (else a keep-alive response waits ~40 ms for a delayed ACK)."""
    import socket

    from txpipe_cli.guarded_http import listen_tcp
    from txpipe_cli.local.target import free_port

    async def run() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen_tcp(free_port(), 8)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname())
        value = await asyncio.wait_for(seen, 5)
        writer.close()
        server.close()
        return value

    assert asyncio.run(run()) == 1

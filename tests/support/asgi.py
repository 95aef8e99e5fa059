"""One HTTP request to an ASGI app, in process: what the dashboard's tests send its app instead of a socket.

Imported by tests only; imports nothing of the tests.
"""

from __future__ import annotations

import asyncio
from typing import Any


def asgi_request(app: Any, method: str, path: str, *, query: str = "",
                 headers: list[tuple[bytes, bytes]] | tuple[()] = ()) -> tuple[int, dict[str, str], bytes]:
    """`path` as ASGI gives it (percent-decoded), an empty body; the answer's status, headers and body."""
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": list(headers)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]

"""Many HTTP clients at once against the local API, on one asyncio loop (loopback only, bounded).

Raw HTTP/1.1 over asyncio streams: every client is one keep-alive connection, so a few hundred
cost the harness little CPU and the runtime is what gets measured. Each client stops after its
requests, each request after `timeout` seconds: a flood always ends.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FloodResult:
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP status -> count
    failures: Counter[str] = field(default_factory=Counter)  # transport failure -> count (reset, timeout...)
    content_types: Counter[str] = field(default_factory=Counter)
    largest_response: int = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.failures.values())


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def request_bytes(port: int, body: bytes, api_key: str, method: str = "POST", path: str = "/orders") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"x-api-key: {api_key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _client(port: int, bodies: list[bytes], api_key: str, result: FloodResult, timeout: float,
                  start: asyncio.Event) -> None:
    await start.wait()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=1 << 22), timeout)
        for body in bodies:
            writer.write(request_bytes(port, body, api_key))
            await writer.drain()
            status, headers, payload = await asyncio.wait_for(_read_response(reader), timeout)
            result.statuses[status] += 1
            result.content_types[headers.get("content-type", "")] += 1
            result.largest_response = max(result.largest_response, len(payload))
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, limit=1 << 22), timeout)
    except TimeoutError:
        result.failures["timeout"] += 1
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
        result.failures[type(exc).__name__] += 1
    finally:
        if writer is not None:
            writer.close()


def flood(port: int, api_key: str, clients: list[list[bytes]], *, timeout: float = 60.0) -> FloodResult:
    """Opens one connection per client at once; each posts its bodies in turn on that connection."""
    async def run() -> FloodResult:
        result, start = FloodResult(), asyncio.Event()
        tasks = [asyncio.create_task(_client(port, bodies, api_key, result, timeout, start)) for bodies in clients]
        await asyncio.sleep(0)
        start.set()
        await asyncio.gather(*tasks)
        return result

    return asyncio.run(run())


async def _slow_client(port: int, kind: str, hold: float) -> tuple[str, float | None]:
    """A client that never finishes its request: 'idle' sends nothing, 'trickle' a header byte a second.
    Returns (kind, seconds until the server closed the connection, or None if it never did)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = loop.time()
    partial = b"POST /orders HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    try:
        for index in range(int(hold)):
            if kind == "trickle":
                writer.write(partial[index:index + 1])
                await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(4096), 1.0)
            except TimeoutError:
                continue
            if not data or b"408" in data:
                return kind, loop.time() - started
        return kind, None
    except (ConnectionError, OSError):
        return kind, loop.time() - started
    finally:
        writer.close()


def slow_clients(port: int, count: int, hold: float) -> list[tuple[str, float | None]]:
    async def run() -> list[tuple[str, float | None]]:
        kinds = ["idle", "trickle"] * (count // 2)
        return await asyncio.gather(*(_slow_client(port, kind, hold) for kind in kinds))

    return asyncio.run(run())


def valid_order(order_id: str, customer_id: int) -> bytes:
    return json.dumps({"customer_id": customer_id, "type": "cheese", "qty": 1, "retail_price": 10.5,
                       "order_id": order_id}).encode()


def hostile_body(size: int = 1024 * 1024 - 64) -> bytes:
    """One order-shaped object with as many unknown keys as fit in `size` bytes (the adversary's body)."""
    parts, length, index = [], 2, 0
    while True:
        item = f'"k{index}":0'
        if length + len(item) + 1 > size:
            break
        parts.append(item)
        length += len(item) + 1
        index += 1
    return ("{" + ",".join(parts) + "}").encode()


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):  # noqa: SIM115 - a few lines of a proc file
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def summarize(result: FloodResult) -> dict[str, Any]:
    return {"statuses": dict(sorted(result.statuses.items())), "failures": dict(result.failures),
            "largest_response_bytes": result.largest_response}

"""`txpipe send`: replay orders from a file through the HTTP API.

The file is a JSON object, a JSON array, or NDJSON (one order per line). Orders
go out in requests of up to 500. Every order without an order_id is given one
here before its first attempt, so a retry after a timeout can never enqueue the
same order twice; each --repeat pass gets fresh ids.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from txpipe_cli.errors import TxpipeError

RETRIES = 4


def read_orders(path: Path) -> list[Any]:
    """The items in a JSON object/array or NDJSON file; each item is checked by the API, not here."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM spreadsheet exports write
    except (OSError, UnicodeDecodeError) as exc:
        raise TxpipeError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError as whole_error:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == 1:
                    raise TxpipeError(f"{path} is neither JSON nor NDJSON: {whole_error}") from None
                raise TxpipeError(f"{path} line {number} is not valid JSON: {exc.msg}") from None
        return items


@dataclass
class SendResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # one per refused request

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "accepted": self.accepted, "rejected": self.rejected, "errors": self.errors}


def _json_or_text(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        return {"error": payload[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": str(data)[:200]}


def batches(items: list[Any], size: int, repeat: int) -> Iterator[list[Any]]:
    for _ in range(repeat):
        stamped = [{**item, "order_id": str(uuid.uuid4())} if isinstance(item, dict) and item.get("order_id") is None
                   else item for item in items]
        for start in range(0, len(stamped), size):
            yield stamped[start:start + size]


class ApiClient:
    """One keep-alive connection to the orders API, with retries on transport errors and 5xx."""

    def __init__(self, url: str, timeout: float = 30, sleep: Callable[[float], None] = time.sleep,
                 headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TxpipeError(f"bad API URL {url!r}")
        self.path = (parts.path.rstrip("/") or "") + "/orders"
        factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connect = lambda: factory(parts.hostname, parts.port, timeout=timeout)
        self._conn = self._connect()
        self._sleep = sleep
        self._headers = {"Content-Type": "application/json", **(headers or {})}

    def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        last: Exception | None = None
        for attempt in range(RETRIES):
            try:
                self._conn.request("POST", self.path, body=body, headers=self._headers)
                response = self._conn.getresponse()
                payload = response.read()
                if response.status < 500 and response.status != 429:  # 429: throttled, so retry
                    return response.status, _json_or_text(payload)
                last = TxpipeError(f"API answered {response.status}: {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                self._conn.close()
                self._conn = self._connect()
            if attempt < RETRIES - 1:
                self._sleep(0.2 * 2**attempt)
        raise TxpipeError(f"the orders API at {self.path} failed {RETRIES} times: {last}",
                          hint="is it deployed? run: txpipe status")

    def close(self) -> None:
        self._conn.close()


def send(client: ApiClient, items: list[Any], *, batch_size: int = 500, repeat: int = 1,
         rate: float | None = None, progress: Callable[[int], None] = lambda _: None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Posts every batch; with `rate`, paces requests so orders go out at about `rate` per second."""
    result = SendResult()
    start = clock()
    for batch in batches(items, batch_size, repeat):
        if rate:
            ahead = start + result.sent / rate - clock()
            if ahead > 0:
                sleep(ahead)
        status, body = client.post(json.dumps(batch).encode())
        result.sent += len(batch)
        result.requests += 1
        if status == 202:
            result.accepted += int(body.get("accepted", len(batch)))
        else:
            result.rejected += len(batch)
            result.errors.append({"request": result.requests, "status": status,
                                  "errors": body.get("errors") or [{"reason": body.get("error", "refused")}]})
        progress(len(batch))
    return result

"""`txpipe send`: replay orders from a file through the HTTP API, safe to re-run.

1. read_orders (txpipe_cli/order_file.py): the file (a JSON object, a JSON array, or NDJSON) becomes a
   list of items, each with its position in the file (array index; 0 for a lone object; NDJSON line
   number, 1-based, blank lines counted), read as the API reads a body (send_ids.loads: exact numbers, a
   repeated key kept). An NDJSON line that is not JSON is an item too (order_file.Unreadable).
2. Check: each order is checked with the API's own validator (lambdas.core.orders), plus a
   duplicate order_id within the file (the later copy is refused); an unreadable line is refused as
   "not valid JSON: ...". Refused orders are never posted, so they cannot hold back valid ones in the
   same request.
3. Ids: in each --repeat pass an order without an order_id gets one from its own content, the pass, and
   which of the identical orders in the file it is (send_ids says what each kind of edit does to them).
   Sent again, even appended to or re-formatted, the same orders get the same ids, and the API stores an
   order_id once: re-running after a crash, Ctrl-C or an API outage never doubles an order.
   With fresh_ids the ids are random uuid4s instead: a re-run then stores everything again.
4. Post: valid orders go out in requests of up to `batch_size` (and under the API's body limit).
   ApiClient retries transport errors, 5xx and 429 with the same body, so with the same ids.
   Should the API still answer 400 (a server of another version), the items it names are
   refused and the rest of that request is re-sent once; a 400 that names no item, or names
   only some of them (a capped list, "error_count" > len(errors)), refuses the whole request.
   Any other 4xx stops the send: it is about the request (URL, key), not the orders.
5. Stop early: ApiClient giving up (TxpipeError) or Ctrl-C ends the send; the result then holds
   the counts so far and `interrupted` says why.

SendResult.to_dict() is the `--json` output; its keys are stable:
  orders       items in the file times --repeat
  sent         orders in requests the API answered (each order counted once)
  requests     requests the API answered (a retry inside ApiClient is the same request)
  accepted     orders the API accepted (202)
  refused      orders refused, by the check before sending or by the API; none of them is stored
  not_sent     orders neither accepted nor refused: not posted yet, or posted in a request that got
               no answer (the API may have stored those; a re-run with the same ids stores them once)
  refusals     the first MAX_LISTED_REFUSALS refusals, each {"pass", "position", "position_kind"
               ("line" or "index"), "order_id" (null for a line that is not JSON), "errors": [{"field", "reason"}]}
  interrupted  null, or the reason the send stopped before every order was answered
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from txpipe_cli.errors import TxpipeError
from txpipe_cli.order_file import OrderFile, Refusal, Unreadable, read_orders, write_rejects
from txpipe_cli.send_ids import assign, dumps, stamp, with_id

if TYPE_CHECKING:
    from lambdas.core.orders import OrderIn

RETRIES = 4
MAX_LISTED_REFUSALS = 1000  # in to_dict(); --rejects gets every one
# read_orders and write_rejects live in order_file; `sender` re-exports them for the send command.
__all__ = ["ApiClient", "OrderFile", "Refusal", "SendResult", "read_orders", "send", "write_rejects"]


def check(orders: list[bytes]) -> list[OrderIn | list[dict[str, Any]]]:
    """The API's own validator's verdict on each order as in the file (an id send adds is always valid): the
    order it would accept, or its errors. 500 orders at a time; a group refused is checked order by order
    (each in an array of one, as posted), so each order's errors are its own."""
    # Imported here: pydantic's import (0.1-0.3 s) would otherwise slow every command, `txpipe --help` too.
    from lambdas.core.orders import MAX_ORDERS_PER_REQUEST, RequestRejected, parse_json, validate_items

    def verdict(body: bytes) -> list[OrderIn] | RequestRejected:
        try:
            return validate_items(parse_json(body))
        except RequestRejected as exc:
            return exc

    verdicts: list[OrderIn | list[dict[str, Any]]] = []
    for start in range(0, len(orders), MAX_ORDERS_PER_REQUEST):
        group = orders[start:start + MAX_ORDERS_PER_REQUEST]
        accepted = verdict(b"[" + b",".join(group) + b"]")
        if not isinstance(accepted, RequestRejected):
            verdicts.extend(accepted)
            continue
        for data in group:
            alone = verdict(b"[" + data + b"]")
            if not isinstance(alone, RequestRejected):
                verdicts.extend(alone)
            else:  # an item refused is always listed; the fallback only keeps it refused should that change
                verdicts.append([{"field": e.field, "reason": e.reason} for e in alone.errors]
                                or [{"field": None, "reason": str(alone) or "refused"}])
    return verdicts


@dataclass(frozen=True)
class Planned:
    """One order of a pass, ready to post: its position, id, the item as posted and its JSON."""

    position: int
    order_id: Any
    item: Any
    data: bytes


@dataclass
class SendResult:
    orders: int = 0
    sent: int = 0
    requests: int = 0
    accepted: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    interrupted: str | None = None
    cancelled: bool = False  # stopped by Ctrl-C (rather than by the API failing)

    @property
    def refused(self) -> int:
        return len(self.refusals)

    @property
    def not_sent(self) -> int:
        return self.orders - self.accepted - self.refused

    def to_dict(self) -> dict[str, Any]:
        return {"orders": self.orders, "sent": self.sent, "requests": self.requests, "accepted": self.accepted,
                "refused": self.refused, "not_sent": self.not_sent,
                "refusals": [r.to_dict() for r in self.refusals[:MAX_LISTED_REFUSALS]],
                "interrupted": self.interrupted}


def plan(orders: OrderFile, pass_number: int, *, fresh_ids: bool = False,
         ) -> tuple[list[Planned], list[Refusal]]:
    """One pass over the file: the orders to post, and those refused before sending, in file order."""
    # As in the file: ids come from the verdicts. A line that is not JSON has no order to check.
    encoded = [b"" if isinstance(item, Unreadable) else dumps(item).encode() for item in orders.items]
    checked = iter(check([data for data, item in zip(encoded, orders.items, strict=True)
                          if not isinstance(item, Unreadable)]))
    verdicts = [[{"field": None, "reason": item.reason}] if isinstance(item, Unreadable) else next(checked)
                for item in orders.items]
    if fresh_ids:
        ids = [str(uuid.uuid4()) if isinstance(item, dict) and item.get("order_id") is None else None
               for item in orders.items]
    else:
        ids = assign(orders.items, [None if isinstance(v, list) else v for v in verdicts], pass_number,
                     orders.id_scope)
    valid: list[Planned] = []
    refused: list[Refusal] = []
    first_at: dict[str, int] = {}
    for item, position, data, verdict, new_id in zip(orders.items, orders.positions, encoded, verdicts, ids,
                                                      strict=True):
        stamped = item if new_id is None else stamp(item, new_id)
        order_id = stamped.get("order_id") if isinstance(stamped, dict) else None
        errors = verdict if isinstance(verdict, list) else []
        if not errors and isinstance(order_id, str):
            if order_id in first_at:
                errors = [{"field": "order_id", "reason": f"duplicate order_id in the file (also at "
                                                          f"{orders.position_kind} {first_at[order_id]})"}]
            else:
                first_at[order_id] = position
        if errors:
            refused.append(Refusal(pass_number, position, orders.position_kind, order_id, errors, stamped))
            continue
        if new_id is not None:
            data = with_id(data, item, stamped)
        valid.append(Planned(position, order_id, stamped, data))
    return valid, refused


def requests_of(planned: list[Planned], size: int, max_bytes: int) -> Iterator[list[Planned]]:
    """Consecutive requests of at most `size` orders whose JSON array fits in `max_bytes`."""
    batch: list[Planned] = []
    length = 2  # "[" and "]"
    for order in planned:
        if batch and (len(batch) == size or length + len(order.data) + 1 > max_bytes):
            yield batch
            batch, length = [], 2
        batch.append(order)
        length += len(order.data) + 1
    if batch:
        yield batch


def _json_or_text(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        return {"error": payload[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": str(data)[:200]}


class ApiClient:
    """One keep-alive connection to the orders API, with retries on transport errors and 5xx."""

    def __init__(self, url: str, timeout: float = 30, sleep: Callable[[float], None] = time.sleep,
                 headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TxpipeError(f"bad API URL {url!r}")
        # The base URL (https://host/stage) or the orders URL itself (what `txpipe endpoint` prints).
        base = parts.path.rstrip("/")
        self.path = base if base.endswith("/orders") else base + "/orders"
        factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connect = lambda: factory(parts.hostname, parts.port, timeout=timeout)
        self.where = f"{parts.scheme}://{parts.netloc}{self.path}"  # for messages: host, port and path
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
                answer = _json_or_text(payload)
                reason = answer.get("error") or answer.get("message") or ""
                last = TxpipeError(f"it answered {response.status}" + (f" ({' '.join(str(reason).split())[:200]})"
                                                                        if reason else ""))
            except (OSError, http.client.HTTPException) as exc:
                last = TxpipeError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                self._conn.close()
                self._conn = self._connect()
            if attempt < RETRIES - 1:
                self._sleep(0.2 * 2**attempt)
        raise TxpipeError(f"the orders API at {self.where} failed {RETRIES} times, last: {last}",
                          hint="run: txpipe status")

    def close(self) -> None:
        self._conn.close()


def _named_errors(body: dict[str, Any], size: int) -> dict[int, list[dict[str, Any]]] | None:
    """A 400's errors by index in the request, or None when it does not say which items are bad."""
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors:
        return None
    if isinstance(body.get("error_count"), int) and body["error_count"] > len(errors):
        return None  # capped: items past the cap may be bad too
    named: dict[int, list[dict[str, Any]]] = {}
    for error in errors:
        index = error.get("index") if isinstance(error, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            return None  # an error about the whole request
        named.setdefault(index, []).append({"field": error.get("field"), "reason": error.get("reason")})
    return named


def _request_errors(status: int, body: dict[str, Any]) -> list[dict[str, Any]]:
    reasons = [e.get("reason") for e in body.get("errors") or [] if isinstance(e, dict) and e.get("reason")]
    reason = "; ".join(map(str, reasons[:3])) or body.get("error") or "refused"
    return [{"field": None, "reason": f"the API refused the whole request ({status}): {reason}"}]


class Sender:
    """Posts one pass's requests and keeps the counts in `result`."""

    def __init__(self, client: ApiClient, result: SendResult, pass_number: int, position_kind: str) -> None:
        self.client = client
        self.result = result
        self.pass_number = pass_number
        self.position_kind = position_kind

    def post(self, batch: list[Planned]) -> None:
        status, body = self._post(batch)
        self.result.sent += len(batch)
        if self._accepted(status, body, batch):
            return
        named = _named_errors(body, len(batch))
        if named is None:
            self._refuse(batch, _request_errors(status, body))
            return
        for index, errors in sorted(named.items()):
            self._refuse([batch[index]], errors)
        rest = [order for index, order in enumerate(batch) if index not in named]
        if rest:  # once: what a second answer refuses stays refused
            status, body = self._post(rest)
            if not self._accepted(status, body, rest):
                named = _named_errors(body, len(rest)) or {}
                whole = _request_errors(status, body)
                for index, order in enumerate(rest):
                    self._refuse([order], named.get(index, whole))

    def _post(self, batch: list[Planned]) -> tuple[int, dict[str, Any]]:
        status, body = self.client.post(b"[" + b",".join(order.data for order in batch) + b"]")
        self.result.requests += 1
        if not (200 <= status < 300 or status in (400, 413)):  # 401, 403, 404...: no request will do better
            raise TxpipeError(f"the orders API answered {status}: {body.get('error') or body}",
                              hint="check --url and the target's API key")
        return status, body

    def _accepted(self, status: int, body: dict[str, Any], batch: list[Planned]) -> bool:
        if not 200 <= status < 300:
            return False
        accepted = body.get("accepted")
        self.result.accepted += accepted if isinstance(accepted, int) else len(batch)
        return True

    def _refuse(self, batch: list[Planned], errors: list[dict[str, Any]]) -> None:
        self.result.refusals.extend(Refusal(self.pass_number, order.position, self.position_kind, order.order_id,
                                            errors, order.item) for order in batch)


def send(client: ApiClient, orders: OrderFile, *, batch_size: int = 500, repeat: int = 1,
         rate: float | None = None, fresh_ids: bool = False, progress: Callable[[int], None] = lambda _: None,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Checks and posts every pass; with `rate`, paces requests so orders go out at about `rate` per second.

    Returns the counts also when the API gives up or on Ctrl-C (then `interrupted` says why).
    """
    from lambdas.core.orders import MAX_BODY_BYTES  # lazily, as in check

    result = SendResult(orders=len(orders.items) * repeat)
    start: float | None = None  # of the pacing: the first request
    posted = 0
    try:
        for pass_number in range(1, repeat + 1):
            checking = clock()
            valid, refused = plan(orders, pass_number, fresh_ids=fresh_ids)
            if start is not None:
                start += clock() - checking  # time spent checking a pass is not for requests to make up
            result.refusals.extend(refused)
            if refused:
                progress(len(refused))
            sender = Sender(client, result, pass_number, orders.position_kind)
            for batch in requests_of(valid, batch_size, MAX_BODY_BYTES):
                start = clock() if start is None else start
                if rate:
                    ahead = start + posted / rate - clock()
                    if ahead > 0:
                        sleep(ahead)
                sender.post(batch)
                posted += len(batch)
                progress(len(batch))
    except TxpipeError as exc:
        result.interrupted = exc.line()
    except KeyboardInterrupt:
        result.interrupted = "interrupted (Ctrl-C)"
        result.cancelled = True
    result.refusals.sort(key=lambda refusal: (refusal.pass_number, refusal.position))  # file order
    return result

"""`txpipe send` internals (txpipe_cli/sender.py) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from txpipe_cli.errors import TxpipeError
from txpipe_cli.sender import RETRIES, ApiClient, SendResult, batches, read_orders, send


def order(n: int, **extra: Any) -> dict[str, Any]:
    return {"customer_id": n, "type": "cheese", "qty": 1, "retail_price": 12.99, **extra}


# --- a fake orders API ----------------------------------------------------------------------------


class FakeApi:
    """State shared with the request handler: what was posted, and statuses to force next."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.forced: deque[int] = deque()
        self.lock = threading.Lock()

    def answer(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.posts.append((path, body))
            if self.forced:
                status = self.forced.popleft()
                return status, {"error": f"forced {status}"}
        if path != "/orders":
            return 404, {"error": "not found"}
        if not isinstance(body, list) or not body or not all(isinstance(item, dict) for item in body):
            return 400, {"errors": [{"index": None, "field": None, "reason": "expected an array of orders"}]}
        errors = [{"index": i, "field": "qty", "reason": "Input should be less than or equal to 100"}
                  for i, item in enumerate(body) if item.get("qty", 0) > 100]
        if errors:
            return 400, {"errors": errors}
        return 202, {"accepted": len(body)}

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.posts]


def make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway does

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = api.answer(self.path, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Sleeps(list):
    """A sleep() that records its arguments instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def client(api: tuple[FakeApi, str]) -> Iterator[tuple[ApiClient, FakeApi, Sleeps]]:
    fake, url = api
    sleeps = Sleeps()
    api_client = ApiClient(url, timeout=5, sleep=sleeps)
    try:
        yield api_client, fake, sleeps
    finally:
        api_client.close()


# --- read_orders ----------------------------------------------------------------------------------


def test_read_orders_json_object(tmp_path: Path) -> None:
    """A file holding one JSON object yields a one-item list."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps(order(1), indent=2))
    assert read_orders(path) == [order(1)]


def test_read_orders_json_array(tmp_path: Path) -> None:
    """A (pretty-printed) JSON array yields its items in order."""
    path = tmp_path / "many.json"
    path.write_text(json.dumps([order(1), order(2), order(3)], indent=1))
    assert read_orders(path) == [order(1), order(2), order(3)]


def test_read_orders_ndjson_with_blank_lines(tmp_path: Path) -> None:
    """NDJSON with blank and whitespace-only lines yields one item per non-blank line."""
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps(order(1)) + "\n\n" + json.dumps(order(2)) + "\n   \n" + json.dumps(order(3)) + "\n")
    assert read_orders(path) == [order(1), order(2), order(3)]


def test_read_orders_ndjson_bad_line_is_named(tmp_path: Path) -> None:
    """A bad NDJSON line raises TxpipeError naming its (1-based, blank lines counted) line number."""
    path = tmp_path / "orders.ndjson"
    path.write_text(json.dumps(order(1)) + "\n\n" + '{"customer_id": 2, "type": \n')
    with pytest.raises(TxpipeError, match=r"line 3 is not valid JSON"):
        read_orders(path)


def test_read_orders_garbage_after_blank_lines_names_the_line(tmp_path: Path) -> None:
    """A file of blank lines then garbage raises TxpipeError naming the garbage's line."""
    path = tmp_path / "junk.txt"
    path.write_text("\n\n  \nnot json at all\n")
    with pytest.raises(TxpipeError, match=r"line 4"):
        read_orders(path)


def test_read_orders_invalid_first_line(tmp_path: Path) -> None:
    """A file that is neither JSON nor NDJSON from its first line says so, with the parser's position."""
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"customer_id": 1,\n  oops\n]\n')
    with pytest.raises(TxpipeError, match=r"neither JSON nor NDJSON: .*line 3"):
        read_orders(path)


def test_read_orders_empty_file_holds_no_items(tmp_path: Path) -> None:
    """An empty or blank file yields no items (the send command then refuses it as holding no orders)."""
    path = tmp_path / "empty.json"
    path.write_text("\n \n")
    assert read_orders(path) == []


def test_read_orders_missing_or_undecodable_file(tmp_path: Path) -> None:
    """A missing file or non-UTF-8 bytes raise TxpipeError 'cannot read', not an OSError/UnicodeError."""
    with pytest.raises(TxpipeError, match="cannot read"):
        read_orders(tmp_path / "absent.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"type": "caf\xe9"}')
    with pytest.raises(TxpipeError, match="cannot read"):
        read_orders(latin)


# --- batches --------------------------------------------------------------------------------------


def test_batches_stamp_missing_ids_and_keep_given_ones() -> None:
    """Dicts without order_id get a fresh UUID; given ids and non-dict items pass unchanged; input is not mutated."""
    items = [order(1), order(2, order_id="client-2"), "not an order", order(3)]
    snapshot = json.loads(json.dumps(items))
    [batch] = list(batches(items, 10, 1))
    assert items == snapshot
    assert batch[1]["order_id"] == "client-2"
    assert batch[2] == "not an order"
    stamped = [batch[0]["order_id"], batch[3]["order_id"]]
    assert len(set(stamped)) == 2
    assert all(str(uuid.UUID(s)) == s for s in stamped)
    assert {k: v for k, v in batch[0].items() if k != "order_id"} == order(1)


def test_batches_give_each_repeat_pass_new_ids() -> None:
    """Each --repeat pass gets fresh ids for unstamped orders; client ids repeat as given."""
    items = [order(1), order(2, order_id="fixed")]
    passes = list(batches(items, 10, 3))
    assert len(passes) == 3
    fresh = [p[0]["order_id"] for p in passes]
    assert len(set(fresh)) == 3
    assert [p[1]["order_id"] for p in passes] == ["fixed"] * 3


@pytest.mark.parametrize(
    ("count", "size", "repeat", "sizes"),
    [(5, 2, 1, [2, 2, 1]), (4, 2, 1, [2, 2]), (5, 2, 2, [2, 2, 1, 2, 2, 1]), (3, 500, 1, [3]),
     (1001, 500, 1, [500, 500, 1]), (1, 1, 3, [1, 1, 1])],
)
def test_batches_split_at_batch_size(count: int, size: int, repeat: int, sizes: list[int]) -> None:
    """Each pass is split into requests of at most `size`, keeping order."""
    items = [order(i + 1) for i in range(count)]
    out = list(batches(items, size, repeat))
    assert [len(b) for b in out] == sizes
    flat = [item["customer_id"] for b in out for item in b]
    assert flat == [i + 1 for i in range(count)] * repeat


def test_batches_stamp_null_order_id() -> None:
    """An order with "order_id": null counts as lacking an id and gets a fresh one."""
    [batch] = list(batches([order(1, order_id=None)], 10, 1))
    assert isinstance(batch[0]["order_id"], str)


# --- ApiClient and send ---------------------------------------------------------------------------


def test_send_counts_accepted_orders(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """All-valid orders: everything is sent and accepted over ceil(n/batch) requests with stamped ids."""
    api_client, fake, sleeps = client
    progressed: list[int] = []
    result = send(api_client, [order(i) for i in range(1, 6)], batch_size=2, progress=progressed.append)
    assert result == SendResult(sent=5, accepted=5, rejected=0, requests=3, errors=[])
    assert result.to_dict() == {"sent": 5, "accepted": 5, "rejected": 0, "errors": []}
    assert progressed == [2, 2, 1]
    assert [len(b) for b in fake.bodies] == [2, 2, 1]
    assert all(isinstance(item["order_id"], str) for b in fake.bodies for item in b)
    assert all(path == "/orders" for path, _ in fake.posts)
    assert sleeps == []


def test_send_counts_a_refused_request(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A batch holding qty 101 is refused whole: its orders count as rejected and the API's errors are kept."""
    api_client, fake, _ = client
    items = [order(1), order(2), order(3), order(4, qty=101), order(5)]
    result = send(api_client, items, batch_size=2)
    assert (result.sent, result.accepted, result.rejected, result.requests) == (5, 3, 2, 3)
    assert result.errors == [{"request": 2, "status": 400,
                              "errors": [{"index": 1, "field": "qty",
                                          "reason": "Input should be less than or equal to 100"}]}]


def test_send_reports_an_error_without_details(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A 4xx answer with only an 'error' message is recorded with that message as the reason."""
    api_client, fake, _ = client
    fake.forced.append(403)
    result = send(api_client, [order(1)])
    assert (result.sent, result.accepted, result.rejected) == (1, 0, 1)
    assert result.errors == [{"request": 1, "status": 403, "errors": [{"reason": "forced 403"}]}]


def test_send_with_repeat(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """--repeat replays the file with fresh ids each pass."""
    api_client, fake, _ = client
    result = send(api_client, [order(1), order(2)], repeat=3)
    assert (result.sent, result.accepted, result.requests) == (6, 6, 3)
    ids = [item["order_id"] for body in fake.bodies for item in body]
    assert len(set(ids)) == 6


def test_5xx_is_retried_with_the_same_body(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """A 503 followed by 202 is retried after a backoff; the retry carries the same order_ids."""
    api_client, fake, sleeps = client
    fake.forced.append(503)
    result = send(api_client, [order(1), order(2)])
    assert (result.sent, result.accepted, result.rejected, result.requests) == (2, 2, 0, 1)
    assert len(fake.posts) == 2
    assert fake.bodies[0] == fake.bodies[1]
    assert sleeps == [0.2]


def test_5xx_every_time_gives_up(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """After RETRIES 5xx answers in a row the client raises TxpipeError with a hint, backing off exponentially."""
    api_client, fake, sleeps = client
    fake.forced.extend([500, 502, 503, 504])
    with pytest.raises(TxpipeError) as info:
        api_client.post(b"[]")
    assert f"failed {RETRIES} times" in info.value.reason
    assert "504" in info.value.reason
    assert info.value.hint
    assert len(fake.posts) == RETRIES
    assert sleeps == [0.2, 0.4, 0.8]  # between attempts, none after the last


def test_transport_error_is_retried() -> None:
    """A refused connection is retried on a fresh connection and finally reported as TxpipeError."""
    sleeps = Sleeps()
    # Port 1 on loopback is closed: every attempt fails at connect time.
    dead = ApiClient("http://127.0.0.1:1", timeout=2, sleep=sleeps)
    try:
        with pytest.raises(TxpipeError, match="failed 4 times"):
            dead.post(b"[]")
    finally:
        dead.close()
    assert sleeps == [0.2, 0.4, 0.8]  # between attempts, none after the last


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http://", ""])
def test_bad_api_url_is_refused(url: str) -> None:
    """A URL that is not http(s) with a host raises TxpipeError."""
    with pytest.raises(TxpipeError, match="bad API URL"):
        ApiClient(url)


def test_api_base_path_is_kept(api: tuple[FakeApi, str]) -> None:
    """A base URL with a stage path posts to <path>/orders (e.g. /prod/orders)."""
    fake, url = api
    api_client = ApiClient(url + "/prod/", timeout=5, sleep=lambda s: None)
    try:
        status, _ = api_client.post(b"[]")
    finally:
        api_client.close()
    assert status == 404
    assert fake.posts[0][0] == "/prod/orders"


class FakeClock:
    """A monotonic clock that only moves when told to, and a sleep() that moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_paces_requests(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """With rate=4/s and batches of 2, each request after the first waits until 0.5 s of quota has passed."""
    api_client, fake, _ = client
    clock = FakeClock()
    result = send(api_client, [order(i) for i in range(1, 11)], batch_size=2, rate=4.0,
                  clock=clock.clock, sleep=clock.sleep)
    assert result.accepted == 10
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(1002.0)  # 8 orders before the last request, at 4/s


def test_rate_does_not_sleep_when_behind(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """When requests are slower than the rate, no sleep is added; a faster one only waits the remainder."""
    api_client, _, _ = client
    clock = FakeClock()
    durations = iter([1.0, 0.1, 0.1])  # each post's duration

    class SlowClient:
        def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
            clock.now += next(durations)
            return api_client.post(body)

    result = send(SlowClient(), [order(i) for i in range(1, 7)], batch_size=2, rate=4.0,  # type: ignore[arg-type]
                  clock=clock.clock, sleep=clock.sleep)
    assert result.accepted == 6
    # after post 1 (t=1.0): quota 0.5 s already passed -> no sleep; after post 2 (t=1.1): due at 1.0 -> no sleep
    assert clock.sleeps == []
    durations = iter([0.1, 0.1, 0.1])
    clock.now = 0.0
    send(SlowClient(), [order(i) for i in range(1, 7)], batch_size=2, rate=4.0,  # type: ignore[arg-type]
         clock=clock.clock, sleep=clock.sleep)
    assert clock.sleeps == pytest.approx([0.4, 0.4])


def test_no_rate_means_no_sleep(client: tuple[ApiClient, FakeApi, Sleeps]) -> None:
    """Without a rate, send never sleeps or consults pacing."""
    api_client, _, _ = client
    clock = FakeClock()
    send(api_client, [order(i) for i in range(1, 7)], batch_size=1, clock=clock.clock, sleep=clock.sleep)
    assert clock.sleeps == []

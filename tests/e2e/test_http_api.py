"""The local orders API on its production server, as any client (or adversary) meets it over TCP.

Property: any bytes posted get a 202 only when they are valid orders, otherwise a 4xx with a reason,
never a 5xx and never a dropped connection. And the HTTP edges: the API key, other methods (405 JSON
with Allow), malformed HTTP (400 JSON with a status line), oversized bodies of any size and framing
(413 that reaches the client), the control socket's privacy.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.local_cli import Cli, local_home, post
from tests.support.strategies import json_values, oracle, to_json, valid_orders

HTTP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-http") as cli:
        yield cli


def raw(cli: Cli, data: bytes, *, read_timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are on a fresh connection; returns the parsed response."""
    with socket.create_connection(("127.0.0.1", cli.state.api_port), timeout=read_timeout) as sock:
        sock.sendall(data)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed without a response; got {buffer!r}")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split(" ")[1]), headers, body


def request(cli: Cli, method: str, body: bytes = b"", *, key: bool = True, path: str = "/orders") -> bytes:
    auth = f"x-api-key: {cli.state.api_key()}\r\n" if key else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def check_answer(cli: Cli, body: bytes) -> None:
    status, answer = post(cli.state, body)
    expected = oracle(body)
    if expected is None:
        assert 400 <= status < 500, (status, answer)
        assert answer.get("error") and all(e["reason"] for e in answer.get("errors", []))
    else:
        assert status == 202, (status, answer)
        assert answer["accepted"] == len(expected)


@HTTP
@given(st.binary(max_size=2000))
def test_any_bytes_get_a_202_only_when_valid(cli: Cli, body: bytes) -> None:
    check_answer(cli, body)


@HTTP
@given(st.lists(valid_orders(), min_size=1, max_size=5) | json_values)
def test_any_json_gets_a_202_only_when_valid(cli: Cli, value: Any) -> None:
    check_answer(cli, to_json(value).encode())


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "GET"])
def test_other_methods_get_405_json_with_allow(cli: Cli, method: str) -> None:
    status, headers, body = raw(cli, request(cli, method))
    assert (status, headers["allow"], headers["content-type"]) == (405, "POST", "application/json")
    assert "POST" in json.loads(body)["message"]


def test_the_api_key_is_checked_before_anything_else(cli: Cli) -> None:
    status, headers, body = raw(cli, request(cli, "DELETE", key=False, path="/anything"))
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})


@pytest.mark.parametrize("line", [b"GARBAGE", b"POST /orders HTTP/1.1 extra", b"\x16\x03\x01"])
def test_malformed_http_gets_400_json_with_a_status_line(cli: Cli, line: bytes) -> None:
    status, headers, body = raw(cli, line + b"\r\nHost: x\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["message"].startswith("malformed HTTP request")


def test_an_http2_request_line_gets_505_json(cli: Cli) -> None:
    status, headers, body = raw(cli, b"POST /orders HTTP/2.0\r\nHost: x\r\n\r\n")
    assert (status, headers["content-type"]) == (505, "application/json")
    assert "HTTP/1.1" in json.loads(body)["message"]


def test_an_oversized_body_gets_413_however_large(cli: Cli) -> None:
    """A 64 MiB body (declared) is read to its end and answered 413; so is a chunked one without a length."""
    size = 64 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", cli.state.api_port), timeout=60) as sock:
        sock.sendall(f"POST /orders HTTP/1.1\r\nHost: x\r\nx-api-key: {cli.state.api_key()}\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        chunk = b"x" * (1 << 20)
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]

    chunked = b"".join(b"%x\r\n%s\r\n" % (65536, b"y" * 65536) for _ in range(40)) + b"0\r\n\r\n"
    status, _, body = raw(cli, f"POST /orders HTTP/1.1\r\nHost: x\r\nx-api-key: {cli.state.api_key()}\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n".encode() + chunked)
    assert status == 413 and "exceeds" in json.loads(body)["error"]


def test_headers_that_never_finish_get_408(cli: Cli) -> None:
    """A request whose headers stop arriving is answered 408 and closed at the 10 s header deadline."""
    with socket.create_connection(("127.0.0.1", cli.state.api_port), timeout=30) as sock:
        sock.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") and 9 <= time.monotonic() - started <= 15


def test_the_control_socket_is_the_operators_alone(cli: Cli) -> None:
    """The Invoke API listens only on a 0600 Unix socket in a 0700 directory; the TCP port has no invoke route."""
    path = cli.state.invoke_socket
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    status, _, _ = raw(cli, request(cli, "POST", b"{}", path="/2015-03-31/functions/sync/invocations"))
    assert status == 404

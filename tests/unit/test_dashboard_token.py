"""The dashboard's token (txpipe_cli/dashboard/server.py), driven through its ASGI app with a stand-in reader:
only this run's token, or the cookie carrying it, lets a request in; tokens are compared in constant time;
a refused refresh starts nothing."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest

from tests.support.asgi import asgi_request
from txpipe_cli.dashboard import server
from txpipe_cli.dashboard.server import DashboardApp

PORT = 8050
TOKEN = "t0ken-" + "x" * 37
COOKIE = f"txpipe_dashboard_{PORT}"


class Reader:
    """What the app reads, counted: a refused request must not reach it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def states(self) -> dict[str, Any]:
        self.calls.append("states")
        return {"ranking": "by gross sales", "states": []}

    def state(self, code: str) -> dict[str, Any]:
        self.calls.append(f"state:{code}")
        return {"state": code}

    def freshness(self) -> dict[str, Any]:
        self.calls.append("freshness")
        return {"refreshing": False}

    def start_refresh(self) -> bool:
        self.calls.append("refresh")
        return True


def call(app: DashboardApp, method: str, target: str,
         headers: list[tuple[str, str]] | tuple[()] = ()) -> tuple[int, dict[str, str], bytes]:
    path, _, query = target.partition("?")
    raw = [(b"host", f"127.0.0.1:{PORT}".encode())] + [(k.lower().encode(), v.encode()) for k, v in headers]
    return asgi_request(app, method, path, query=query, headers=raw)


@pytest.fixture
def reader() -> Reader:
    return Reader()


@pytest.fixture
def app(reader: Reader) -> Any:
    dashboard = DashboardApp(reader, PORT, TOKEN)  # type: ignore[arg-type]
    yield dashboard
    dashboard.close()


@pytest.mark.parametrize("cookies", [
    [("Cookie", f"{COOKIE}={TOKEN}")],
    [("Cookie", f'_xsrf=2|ab; weird="a b;c"; {COOKIE}={TOKEN}; other=1')],  # other apps' cookies on 127.0.0.1
    [("Cookie", "a=1"), ("Cookie", f"{COOKIE}={TOKEN}")],  # cookies split over two headers
])
def test_the_cookie_lets_a_request_in_among_other_cookies(app: DashboardApp, reader: Reader,
                                                           cookies: list[tuple[str, str]]) -> None:
    status, _, body = call(app, "GET", "/api/states/TX", cookies)
    assert (status, json.loads(body), reader.calls) == (200, {"state": "TX"}, ["state:TX"])


@pytest.mark.parametrize("headers", [
    [],
    [("Cookie", f"{COOKIE}={TOKEN[:-1]}")],
    [("Cookie", f"{COOKIE}={TOKEN}x")],
    [("Cookie", f"txpipe_dashboard_8051={TOKEN}")],  # another port's cookie is another dashboard's
    [("Cookie", f"{COOKIE}=")],
    [("Authorization", f"Bearer {TOKEN}")],
    [("Cookie", f"x{COOKIE}={TOKEN}")],
])
def test_anything_else_is_401_and_reads_nothing(app: DashboardApp, reader: Reader,
                                                headers: list[tuple[str, str]]) -> None:
    for path in ("/api/states", "/api/states/TX", "/api/freshness", "/"):
        status, response_headers, body = call(app, "GET", path, headers)
        assert status == 401 and "terminal" in json.loads(body)["error"], path
        assert response_headers["www-authenticate"].startswith("Token")  # not Basic: no password prompt
    assert reader.calls == []


def test_a_refused_refresh_starts_nothing(app: DashboardApp, reader: Reader) -> None:
    status, _, _ = call(app, "POST", "/api/refresh", [("X-Txpipe-Dashboard", "1")])
    assert (status, reader.calls) == (401, [])
    status, _, _ = call(app, "POST", "/api/refresh", [("X-Txpipe-Dashboard", "1"), ("Cookie", f"{COOKIE}={TOKEN}")])
    assert (status, reader.calls) == (202, ["refresh"])


@pytest.mark.parametrize(("target", "location"), [
    (f"/?token={TOKEN}", "/"),
    (f"/?state=TX&token={TOKEN}", "/?state=TX"),
    (f"/?token={TOKEN}&state=ny&x=a%20b", "/?state=ny&x=a+b"),
])
def test_the_first_load_sets_the_cookie_and_drops_the_token(app: DashboardApp, target: str, location: str) -> None:
    status, headers, body = call(app, "GET", target)
    assert (status, headers["location"], body) == (303, location, b"")
    assert headers["set-cookie"] == f"{COOKIE}={TOKEN}; HttpOnly; SameSite=Strict; Path=/"
    assert headers["referrer-policy"] == "no-referrer"


def test_a_stale_token_with_a_good_cookie_is_dropped_from_the_url_and_sets_nothing(app: DashboardApp) -> None:
    status, headers, _ = call(app, "GET", "/?token=old&state=TX", [("Cookie", f"{COOKIE}={TOKEN}")])
    assert (status, headers["location"], "set-cookie" in headers) == (303, "/?state=TX", False)


def test_a_wrong_token_is_401_even_beside_a_right_one(app: DashboardApp) -> None:
    assert call(app, "GET", f"/api/states?token={TOKEN}&token=wrong")[0] == 401
    assert call(app, "GET", f"/api/states?token={TOKEN}")[0] == 200


def test_tokens_are_compared_in_constant_time(app: DashboardApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways in go through hmac.compare_digest (a plain == returns sooner the earlier a byte differs)."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(server.hmac, "compare_digest", spy)
    call(app, "GET", "/api/states?token=guess")
    call(app, "GET", "/api/states", [("Cookie", f"{COOKIE}=guess2")])
    assert compared == [(b"guess", TOKEN.encode()), (b"guess2", TOKEN.encode())]


def test_the_page_is_behind_the_token_and_the_assets_are_not(app: DashboardApp) -> None:
    assert call(app, "GET", "/static/index.html")[0] == 404
    assert call(app, "GET", "/static/dashboard.js")[0] == 200
    assert call(app, "GET", "/", [("Cookie", f"{COOKIE}={TOKEN}")])[0] == 200
    status, headers, body = call(app, "GET", "/", [("Accept", "text/html")])
    assert status == 401 and headers["content-type"].startswith("text/html")
    assert b"<code>txpipe dashboard</code>" in body

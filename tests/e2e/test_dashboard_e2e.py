"""`txpipe dashboard` as analysts use it: a real server process over a real local deployment, its JSON
equal to `txpipe report --json`, its refresh button, what it refuses, and its token: the URL it prints
lets a browser in (a cookie), and nothing else does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dashboard import Dashboard, dashboard_home
from tests.support.local_cli import Cli, wait_for

STATES = ["TX", "CA", "NY", "WY", "DC"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with dashboard_home(tmp_path_factory) as cli:
        yield cli


def test_states_equal_report_all(cli: Cli, dashboard: Dashboard) -> None:
    report = cli.json("report", "--all")
    assert dashboard.json("/api/states") == {"ranking": report["ranking"], "states": report["states"]}


@pytest.mark.parametrize("code", STATES)
def test_each_state_equals_report_state(cli: Cli, dashboard: Dashboard, code: str) -> None:
    expected = cli.json("report", "--state", code)["states"][0]
    assert dashboard.json(f"/api/states/{code.lower()}") == expected
    assert 1 <= expected["rank"] <= 51 and expected["state_name"]


@pytest.mark.parametrize(("given", "code"), [("texas", "TX"), ("tex", "TX"), ("new%20y", "NY"), ("Wyo", "WY")])
def test_a_state_by_name_or_its_start_as_report_takes_it(cli: Cli, dashboard: Dashboard, given: str,
                                                         code: str) -> None:
    assert dashboard.json(f"/api/states/{given}") == cli.json("report", "--state", code)["states"][0]


@pytest.mark.parametrize(("given", "error", "candidates"), [
    ("ZZ", "ZZ is not a US state (", []),
    ("new", "new matches New Hampshire, New Jersey, New Mexico, New York (", ["NH", "NJ", "NM", "NY"]),
])
def test_a_state_it_cannot_tell_is_404_saying_why(dashboard: Dashboard, given: str, error: str,
                                                  candidates: list[str]) -> None:
    status, _, body = dashboard.request("GET", f"/api/states/{given}")
    answer = json.loads(body)
    assert status == 404 and answer["error"].startswith(error) and answer["candidates"] == candidates


def test_the_page_and_its_assets_are_served_with_a_strict_policy(dashboard: Dashboard) -> None:
    status, headers, body = dashboard.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in body.lower()
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = dashboard.request("GET", "/static/dashboard.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["cache-control"] == "no-cache"  # revalidated: an upgraded page shows at once
    status, _, body = dashboard.request("GET", "/static/dashboard.js", {"If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")


def test_refresh_button_brings_new_orders_into_the_views(cli: Cli, dashboard: Dashboard, tmp_path: Path) -> None:
    """Orders synced after the refresh are counted as not in the views; POST /api/refresh (with its
    header) refreshes them in the background; a second POST meanwhile is 409 or finds it done."""
    before = dashboard.json("/api/states/TX")
    [(tx_customer,)] = cli.sql("oltp", "SELECT min(customer_id) FROM customers WHERE state = 'TX'")
    orders = tmp_path / "more.json"
    orders.write_text(json.dumps({"customer_id": tx_customer, "type": "cheese", "qty": 2, "retail_price": 10}))
    assert cli.json("send", str(orders), "--fresh-ids")["accepted"] == 1
    cli.json("sync-now")  # waits for the queue, then moves the order
    assert cli.json("report", "-s", "TX")["freshness"]["awaiting_refresh"] == 1
    wait_for(lambda: dashboard.json("/api/freshness")["awaiting_refresh"] == 1, what="the dashboard to see it")

    status, _, body = dashboard.request("POST", "/api/refresh", {"X-Txpipe-Dashboard": "1"})
    assert status == 202 and json.loads(body) == {"refreshing": True}
    wait_for(lambda: not dashboard.json("/api/freshness")["refreshing"], what="the refresh to end")
    fresh = dashboard.json("/api/freshness")
    assert (fresh["awaiting_refresh"], fresh["refresh_error"]) == (0, None) and fresh["views_refreshed_at"]
    after = dashboard.json("/api/states/TX")
    assert after["total_pizzas"] == before["total_pizzas"] + 2 and after == cli.json("report", "-s", "TX")["states"][0]


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("POST", "/api/refresh", {}, 403),  # a cross-site form cannot send the header
    ("GET", "/api/refresh", {"X-Txpipe-Dashboard": "1"}, 405),
    ("GET", "/api/states", {"Host": "attacker.example:80"}, 421),  # DNS rebinding
    ("GET", "/api/states/ZZ", {}, 404),
    ("GET", "/static/../server.py", {}, 404),
    ("GET", "/static/index.html", {}, 404),  # the page is served at / alone, behind the token
    ("DELETE", "/api/states", {}, 405),
])
def test_what_it_refuses(dashboard: Dashboard, method: str, path: str, headers: dict[str, str], status: int) -> None:
    got, response_headers, body = dashboard.request(method, path, headers)
    assert got == status and "error" in json.loads(body)
    assert response_headers["cache-control"] == "no-store"


def test_a_port_in_use_is_one_line(cli: Cli, dashboard: Dashboard) -> None:
    result = cli("dashboard", "--port", str(dashboard.port), code=1)
    assert result.output.strip().splitlines() == [
        f"error: port {dashboard.port} on 127.0.0.1 is in use (run: txpipe dashboard --port 0)"]


def test_the_url_carries_a_fresh_token_and_its_first_load_trades_it_for_a_cookie(dashboard: Dashboard) -> None:
    """The printed URL is /?token=<32 random bytes>; loading it sets an HttpOnly, SameSite=Strict cookie and
    redirects to the same URL without the token (other parameters kept), where the page loads."""
    assert dashboard.url == f"{dashboard.base}?token={dashboard.token}" and len(dashboard.token) >= 43
    status, headers, body = dashboard.request("GET", f"/?state=TX&token={dashboard.token}", cookie=False)
    assert (status, headers["location"], body) == (303, "/?state=TX", b"")
    name, _, value = headers["set-cookie"].split(";")[0].partition("=")
    assert (name, value) == (f"txpipe_dashboard_{dashboard.port}", dashboard.token)
    assert {a.strip() for a in headers["set-cookie"].split(";")[1:]} == {"HttpOnly", "SameSite=Strict", "Path=/"}
    assert headers["cache-control"] == "no-store"
    status, headers, body = dashboard.request("GET", "/?state=TX", {"Cookie": f"other=1; {name}={value}"}, cookie=False)
    assert status == 200 and b"<html" in body.lower() and "default-src 'self'" in headers["content-security-policy"]


WRONG = "A" * 43


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("GET", "/", {}),
    ("GET", "/?state=TX", {"Accept": "application/json"}),
    ("GET", f"/?token={WRONG}", {}),
    ("GET", "/api/states", {}),
    ("GET", "/api/states/TX", {"Cookie": f"txpipe_dashboard_0={WRONG}"}),
    ("GET", f"/api/states/TX?token={WRONG}", {}),
    ("GET", "/api/freshness", {}),
    ("POST", "/api/refresh", {"X-Txpipe-Dashboard": "1"}),
    ("GET", "/no/such/page", {}),  # which pages exist is nobody else's business either
])
def test_without_the_token_or_its_cookie_everything_but_the_assets_is_401(
        dashboard: Dashboard, method: str, path: str, headers: dict[str, str]) -> None:
    got, response_headers, body = dashboard.request(method, path, headers, cookie=False)
    assert got == 401, (path, got, body)
    error = json.loads(body)["error"]
    assert "txpipe dashboard" in error and "terminal" in error and "?token=" in error
    assert dashboard.token not in body.decode() and "set-cookie" not in response_headers


def test_a_browser_without_the_cookie_gets_a_page_saying_where_the_url_is(dashboard: Dashboard) -> None:
    status, headers, body = dashboard.request("GET", "/", {"Accept": "text/html,*/*"}, cookie=False)
    assert status == 401 and headers["content-type"].startswith("text/html")
    assert b"txpipe dashboard</code> printed in the terminal" in body and b"<script" not in body
    assert "default-src 'self'" in headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/static/dashboard.js", "/static/dashboard.css", "/static/favicon.svg",
                                  "/static/vendor/d3.min.js", "/static/vendor/states-albers-10m.json"])
def test_the_assets_need_no_token(dashboard: Dashboard, path: str) -> None:
    """Code, styles and the map's shapes hold no figures: a page refused its cookie can still say why, styled."""
    status, _, body = dashboard.request("GET", path, cookie=False)
    assert status == 200 and body


def test_a_script_may_pass_the_token_in_the_query(dashboard: Dashboard) -> None:
    status, headers, body = dashboard.request("GET", f"/api/states/WY?token={dashboard.token}", cookie=False)
    assert status == 200 and json.loads(body)["state"] == "WY" and "set-cookie" not in headers

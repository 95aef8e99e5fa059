"""`GET /api/states/{state}` (txpipe_cli/dashboard/server.py) takes a state as `report --state` does: a code,
a name or the unambiguous start of one picks it; anything else is 404 JSON with the line `report` prints and
the candidates, and reads nothing. Driven through the ASGI app with a stand-in reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.asgi import asgi_request
from txpipe_cli.dashboard.server import DashboardApp

PORT = 8050
TOKEN = "t0ken-" + "y" * 37
COOKIE = (b"cookie", f"txpipe_dashboard_{PORT}={TOKEN}".encode())


class Reader:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def state(self, code: str) -> dict[str, Any]:
        self.calls.append(code)
        return {"state": code}


def get(app: DashboardApp, path: str) -> tuple[int, Any]:
    """`path` as ASGI gives it: percent-decoded."""
    status, _, body = asgi_request(app, "GET", path, headers=[(b"host", f"127.0.0.1:{PORT}".encode()), COOKIE])
    return status, json.loads(body)


@pytest.fixture
def reader() -> Reader:
    return Reader()


@pytest.fixture
def app(reader: Reader) -> Any:
    dashboard = DashboardApp(reader, PORT, TOKEN)  # type: ignore[arg-type]
    yield dashboard
    dashboard.close()


@pytest.mark.parametrize(("given", "code"), [
    ("TX", "TX"), ("tx", "TX"), ("Texas", "TX"), ("tex", "TX"), ("new york", "NY"), ("new y", "NY"),
    ("calif", "CA"), ("District of Columbia", "DC"), ("ne", "NE"), ("Virginia", "VA"),
])
def test_a_code_a_name_or_its_start_picks_that_state(app: DashboardApp, reader: Reader, given: str,
                                                     code: str) -> None:
    assert get(app, f"/api/states/{given}") == (200, {"state": code})
    assert reader.calls == [code]


@pytest.mark.parametrize(("given", "error", "candidates"), [
    ("ZZ", "ZZ is not a US state (give a name, a USPS code or the start of one: Texas, TX, tex)", []),
    ("texass", "texass is not a US state (give a name, a USPS code or the start of one: Texas, TX, tex)", []),
    ("new", "new matches New Hampshire, New Jersey, New Mexico, New York (give more of the name, or the code)",
     ["NH", "NJ", "NM", "NY"]),
    ("", "no state given (give a name, a USPS code or the start of one: Texas, TX, tex)", []),
])
def test_anything_else_is_404_naming_the_problem(app: DashboardApp, reader: Reader, given: str, error: str,
                                                 candidates: list[str]) -> None:
    assert get(app, f"/api/states/{given}") == (404, {"error": error, "candidates": candidates})
    assert reader.calls == []

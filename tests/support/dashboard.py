"""`txpipe dashboard` as a browser reaches it, for the e2e tests and the AWS rehearsal (tests/aws/test_deploy_moto.py).

`Dashboard` starts a real `txpipe dashboard --port 0 --json` process over a deployment (local or aws) and makes plain
HTTP requests to it, carrying the cookie its printed URL sets; `dashboard_home` is a local deployment with figures
for it to show (400 customers, 900 orders synced, the views refreshed). The e2e tier's `dashboard` fixture
(tests/e2e/conftest.py) starts one over a module's `cli`.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.local_cli import Cli, local_home


class Dashboard:
    """A `txpipe dashboard --port 0 --json` process and plain HTTP requests to it, carrying the cookie its
    URL's first load sets, as a browser does (`cookie=False`: none)."""

    def __init__(self, home: Path, target: str = "local") -> None:
        command = [sys.executable, "-c", "from txpipe_cli.app import main; main()",
                   "dashboard", "--port", "0", "--json"]
        env = {**os.environ, "TXPIPE_HOME": str(home), "TXPIPE_TARGET": target}
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                                     text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line, f"the dashboard did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
        self.url = json.loads(line)["url"]
        self.port = urlsplit(self.url).port
        self.base = f"http://127.0.0.1:{self.port}/"
        [self.token] = parse_qs(urlsplit(self.url).query)["token"]
        status, headers, _ = self.request("GET", f"/?token={self.token}", cookie=False)
        assert status == 303, status
        self.set_cookie = headers["set-cookie"]
        self.cookie = self.set_cookie.split(";")[0]

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                cookie: bool = True) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers={**({"Cookie": self.cookie} if cookie else {}), **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


@contextmanager
def dashboard_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A module's own local deployment with figures to show: 400 customers, 900 orders sent, synced, the views
    refreshed (destroyed afterwards)."""
    with local_home(tmp_path_factory, "e2e-dashboard") as cli:
        cli.json("seed", "--generate", "400")
        orders = tmp_path_factory.mktemp("orders") / "orders.json"
        orders.write_text(json.dumps([{"customer_id": 1 + i % 400, "type": ["cheese", "veggie", "supreme"][i % 3],
                                       "qty": 1 + i % 3, "retail_price": 11.5} for i in range(900)]))
        cli.json("send", str(orders))
        cli.json("sync-now")
        cli.json("refresh-views")
        yield cli

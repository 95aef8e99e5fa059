"""The local target driven through the CLI, as an operator runs it, for the e2e tests (tests/e2e/).

`Cli` runs `txpipe` in process (Typer's CliRunner) under one TXPIPE_HOME with TXPIPE_TARGET=local, checks the exit
code and reads --json; `local_home` gives a test module its own deployment (deployed, or not yet) and destroys it
afterwards; `post` sends a body to the deployment's POST /orders; `wait_for` polls a condition. A test module
deploys its own target through `local_home` in a module-scoped fixture (one deployment per module).

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.database import query
from txpipe_cli.app import app
from txpipe_cli.local.state import LocalState

runner = CliRunner()


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env={"TXPIPE_HOME": str(self.home), "TXPIPE_TARGET": "local"})
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    @property
    def state(self) -> LocalState:
        state = LocalState.load(self.home)
        assert state is not None
        return state

    def sql(self, database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """`statement`'s rows from one of the deployment's databases (oltp, warehouse, queue)."""
        return query(self.state.endpoint(database), statement, params)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def post(state: LocalState, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST /orders with the deployment's API key (unless headers replace it)."""
    conn = http.client.HTTPConnection("127.0.0.1", state.api_port, timeout=10)
    try:
        conn.request("POST", "/orders", body=body, headers={"Content-Type": "application/json",
                                                            "x-api-key": state.api_key(), **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@contextmanager
def local_home(tmp_path_factory: pytest.TempPathFactory, name: str, deploy: bool = True) -> Iterator[Cli]:
    """A test module's own local deployment (`txpipe deploy` under a fresh TXPIPE_HOME, unless not `deploy`),
    destroyed afterwards if one is there."""
    home = tmp_path_factory.mktemp(name) / "txpipe-home"
    cli = Cli(home)
    if deploy:
        cli.json("deploy")
    try:
        yield cli
    finally:
        if (home / "local.json").exists():
            runner.invoke(app, ["destroy", "--yes"], env={"TXPIPE_HOME": str(home)})

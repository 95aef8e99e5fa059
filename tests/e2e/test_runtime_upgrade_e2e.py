"""An upgrade replaces the running runtime: a deploy finds a runtime started by other code (its recorded code
fingerprint differs), or with an earlier release's runtime options, and starts today's, settings unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.local_cli import Cli, local_home
from txpipe_cli.local.target import RUNTIME_DEFAULTS, runtime_code


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-runtime-upgrade") as cli:
        yield cli


def record(cli: Cli, **runtime: object) -> None:
    """Rewrites the recorded runtime as an earlier release would have left it."""
    path = cli.home / "local.json"
    state = json.loads(path.read_text())
    state["runtime"].update(runtime)
    path.write_text(json.dumps(state))


def test_a_runtime_of_other_code_is_replaced_and_then_left_running(cli: Cli) -> None:
    assert cli.state.runtime["code"] == runtime_code()
    assert cli.json("deploy")["actions"]["runtime"] == "running"
    before = cli.state.runtime_pid
    record(cli, code="an-earlier-release", batch_size=100)  # an earlier release's code and its runtime options
    result = cli.json("deploy")
    assert result["actions"]["runtime"] == "updated" and cli.state.runtime_pid != before
    assert cli.state.runtime["code"] == runtime_code()
    assert cli.state.runtime["batch_size"] == RUNTIME_DEFAULTS["batch_size"]  # the release's, not the old 100
    assert cli.json("deploy")["actions"]["runtime"] == "running"

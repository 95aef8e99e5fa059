"""A local deployment of the previous release, upgraded by today's `txpipe deploy`: the state file that release
wrote (tests/fixtures/release-ab5771d/local.json: every setting, no list of choices) takes today's defaults
for what was that release's default, keeps what the operator chose, and the output says which."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdas.core.defaults import MAX_RECEIVE_COUNT
from tests.support.local_cli import Cli, local_home

FIXTURE = Path(__file__).parents[1] / "fixtures" / "release-ab5771d" / "local.json"
PREVIOUS = json.loads(FIXTURE.read_text())
MOVED = ("setting max_receive_count: 5 -> 1000 (the release's default; 5 was an earlier release's default, not "
         "recorded as your choice: to keep it, deploy --max-receive-count 5)")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The previous release's local.json under a fresh home, with that machine's server directory, ports and
    process id cleared (nothing of them runs here): today's deploy makes its own."""
    with local_home(tmp_path_factory, "e2e-upgrade", deploy=False) as cli:
        cli.home.mkdir(parents=True)
        (cli.home / "local.json").write_text(json.dumps({**PREVIOUS, "pg_root": "", "pg_port": 0, "api_port": 0,
                                                         "runtime_pid": 0}, indent=2))
        yield cli


def test_the_plan_says_what_the_upgrade_would_change_and_changes_nothing(cli: Cli) -> None:
    result = cli("deploy", "--plan")
    assert MOVED in result.stdout
    assert "refresh_at" not in result.stdout and "visibility_timeout" not in result.stdout
    assert cli.state.settings == PREVIOUS["settings"]


def test_the_upgrade_takes_todays_default_and_keeps_the_choices(cli: Cli) -> None:
    """max_receive_count 5 (that release's default) -> 1000, said with its reason in --json; refresh_at 03:30
    and the 45 s visibility timeout (chosen then) stay; the state now lists them as chosen, and the functions'
    queue runs with 1000."""
    result = cli.json("deploy")
    assert result["settings_changed"] == {"max_receive_count": {
        "from": 5, "to": MAX_RECEIVE_COUNT, "default": True,
        "reason": MOVED.split(" (", 1)[1].rstrip(")")}}
    expected = {**PREVIOUS["settings"], "max_receive_count": MAX_RECEIVE_COUNT,
                "chosen": ["refresh_at", "visibility_timeout_seconds"]}
    assert result["settings"] == cli.state.settings == expected
    env = cli.state.function_env("store")
    assert (env["TXPIPE_QUEUE_MAX_RECEIVE_COUNT"], env["TXPIPE_QUEUE_VISIBILITY_TIMEOUT"]) == ("1000", "45.0")
    assert all(part["alive"] for part in cli.json("status")["parts"].values())


def test_after_the_upgrade_a_bare_deploy_changes_nothing(cli: Cli) -> None:
    pid = cli.state.runtime_pid
    again = cli.json("deploy")
    assert again["changed"] is False and again["settings_changed"] == {}
    assert cli.state.runtime_pid == pid
    status = " ".join(cli("status").stdout.split())  # the settings line folds at the terminal's width
    assert "max_receive_count=1000" in status
    assert "(chosen: refresh_at, visibility_timeout_seconds; the rest are the release's defaults)" in status

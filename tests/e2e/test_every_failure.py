"""Every command, in every way it can fail for an operator: one line on stderr naming the reason and a
command to run next, a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.e2e.test_local_target import Cli, wait_for
from txpipe_cli.app import app
from txpipe_cli.local.pg import PgServer, find_bindir
from txpipe_cli.local.target import pid_is_runtime

runner = CliRunner()
MISSING = "/nonexistent-txpipe/dir"

# Commands an operator runs against a deployment (the target is added by each condition).
DAY = [["status"], ["sync-now", "--queue-wait", "0"], ["sla-report"], ["report", "--state", "TX"], ["report", "--all"],
       ["refresh-views"], ["seed", "--generate", "5"], ["dlq", "list"], ["dlq", "show", "1"], ["dlq", "redrive"],
       ["dlq", "purge", "--yes"], ["rejected", "list"], ["endpoint"], ["logs"], ["dashboard", "--port", "0"]]


def check(home: Path, args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, args, env={"TXPIPE_HOME": str(home), **(env or {})})
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0, f"{args}: exit 0\n{result.output}"
    assert isinstance(result.exception, SystemExit), f"{args}: {result.exception!r}"
    assert "Traceback" not in result.output + result.stderr, args
    assert len(err) == 1, f"{args}: {len(err)} lines on stderr:\n{result.stderr}"
    assert err[0].startswith("error: ") and "run: " in err[0], f"{args}: {err[0]}"
    return err[0]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("e2e-failures-all") / "txpipe-home"
    cli = Cli(home)
    yield cli
    runner.invoke(app, ["destroy", "--yes"], env={"TXPIPE_HOME": str(home)})


@pytest.mark.parametrize("args", DAY, ids=" ".join)
def test_nothing_deployed(cli: Cli, args: list[str]) -> None:
    assert "nothing is deployed" in check(cli.home, args)


@pytest.mark.parametrize("args", [
    ["send", f"{MISSING}/orders.json"], ["sample", "-o", f"{MISSING}/x.json"],
    ["seed", "--customers", f"{MISSING}/c.csv"], ["rejected", "export", f"{MISSING}/r.ndjson"],
    ["package", "-o", "/proc/txpipe-build"],
], ids=" ".join)
def test_bad_paths(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    check(cli.home, args)


def test_runtime_dead_then_database_down(cli: Cli) -> None:
    """Deployed, then the runtime killed: every command says so; then the database stopped too. (endpoint
    and logs keep working: they read the state directory, which is what an operator needs then.)"""
    cli.json("deploy")
    pid = cli.state.runtime_pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_is_runtime(pid), what="the runtime to die")
    live = [args for args in DAY if args[0] not in ("endpoint", "logs")]
    for args in live:
        line = check(cli.home, args)
        assert "runtime" in line or "deploy" in line, (args, line)
    state = cli.state
    PgServer(Path(state.pg_root), state.pg_port, state.pg_user, find_bindir()).stop()
    for args in live:
        check(cli.home, args)
    assert runner.invoke(app, ["logs"], env={"TXPIPE_HOME": str(cli.home)}).exit_code == 0


AWS_ENV = {"AWS_SHARED_CREDENTIALS_FILE": f"{MISSING}/credentials", "AWS_CONFIG_FILE": f"{MISSING}/config",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": None,
           "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": None}


@pytest.mark.parametrize("args", [*DAY, ["doctor"], ["deploy", "--plan"], ["send", "examples/sample.json"]],
                         ids=" ".join)
def test_no_aws_credentials(cli: Cli, args: list[str]) -> None:
    """No credentials anywhere (CliRunner's env: None unsets a variable)."""
    line = check(cli.home, [*args, "--target", "aws"], env=AWS_ENV)  # type: ignore[arg-type]
    assert "credential" in line or "deployment" in line, line

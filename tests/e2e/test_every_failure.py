"""Every command, in every way it can fail for an operator: one line on stderr naming the reason and a
command to run next, a non-zero exit, never a traceback. A usage error (an unknown option or command, a
bad value, a missing argument) is that one line too, exit 2, naming the help to read: never Click's usage
block in rich's box."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tests.support.local_cli import Cli, wait_for
from txpipe_cli.app import app
from txpipe_cli.commands import pipeline
from txpipe_cli.local.pg import PgServer, find_bindir
from txpipe_cli.local.processes import pid_is_runtime

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


def leaf_commands() -> list[list[str]]:
    """Every command an operator can run, as its words after `txpipe` (dlq list, ...), read from the app."""
    def walk(command: typer.main.TyperGroup, words: list[str]) -> list[list[str]]:
        found = []
        for name, sub in command.commands.items():
            found += walk(sub, [*words, name]) if getattr(sub, "commands", None) else [[*words, name]]
        return found

    return walk(typer.main.get_command(app), [])


def typed_option(words: list[str]) -> str | None:
    """The command's first option that takes a number, if it has one (a bad value gets exit 2 from it)."""
    command = typer.main.get_command(app)
    for word in words:
        command = command.commands[word]
    for param in command.params:
        if getattr(param, "type_descriptor", None) and param.type_descriptor.annotation in (int, float):
            return param.opts[0]
    return None


COMMANDS = leaf_commands()
TYPED = [[*words, typed_option(words), "not-a-number"] for words in COMMANDS if typed_option(words)]
BOX = {chr(c) for c in range(0x2500, 0x2580)}  # rich's box drawing


def check_usage(args: list[str], env: dict[str, str] | None = None) -> str:
    """One line on stderr, `error: <reason>; see: txpipe <command> --help`, exit 2, nothing on stdout."""
    result = runner.invoke(app, args, env=env)
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, f"{args}: exit {result.exit_code}\n{result.output}{result.stderr}"
    assert len(err) == 1, f"{args}: {len(err)} lines on stderr:\n{result.stderr}"
    assert err[0].startswith("error: ") and " --help" in err[0], f"{args}: {err[0]}"
    assert not BOX & set(result.stderr + result.stdout), f"{args}: a box\n{result.stderr}"
    assert "Usage:" not in result.stderr and not result.stdout.strip(), f"{args}:\n{result.output}"
    return err[0]


def test_every_command_is_covered() -> None:
    assert len(COMMANDS) >= 20 and ["endpoint"] in COMMANDS and ["dlq", "list"] in COMMANDS, COMMANDS
    assert [["send", "--rate", "not-a-number"], ["dashboard", "--port", "not-a-number"]] <= [
        args for args in TYPED if args[0] in ("send", "dashboard")], TYPED


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_unknown_option(words: list[str]) -> None:
    line = check_usage([*words, "--no-such-option"])
    assert line == f"error: no such option --no-such-option; see: txpipe {' '.join(words)} --help", line


@pytest.mark.parametrize("args", TYPED, ids=" ".join)
def test_bad_value(args: list[str]) -> None:
    line = check_usage(args)
    assert line.startswith(f"error: invalid value for '{args[-2]}'") and ": input should be" in line, line
    assert line.endswith(f"; see: txpipe {' '.join(args[:-2])} --help"), line


@pytest.mark.parametrize(("args", "expected"), [
    (["endpoint", "--show-keys"],
     "error: no such option --show-keys (did you mean --show-key?); see: txpipe endpoint --help"),
    (["send", "x", "--rate", "0"], "error: invalid value for '--rate': input should be greater than or equal to "
                                   "0.1; see: txpipe send --help"),
    (["sendd"], "error: no such command 'sendd' (did you mean 'send', 'seed'?); see: txpipe --help"),
    (["dlq", "lisst"], "error: no such command 'lisst' (did you mean 'list'?); see: txpipe dlq --help"),
    (["send"], "error: missing argument 'file'; see: txpipe send --help"),
    (["dlq", "list", "--limit"], "error: option '--limit' requires an argument; see: txpipe dlq list --help"),
    (["status", "--json=yes"], "error: option '--json' does not take a value; see: txpipe status --help"),
    (["endpoint", "extra"], "error: got unexpected extra argument(s) (extra); see: txpipe endpoint --help"),
    (["--no-such-option"], "error: no such option --no-such-option; see: txpipe --help"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_usage_error_lines(args: list[str], expected: str) -> None:
    assert check_usage(args) == expected


def test_debug_keeps_tracebacks_and_usage_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """TXPIPE_DEBUG=1: a usage error is still its one line; an unexpected error is raised, for its traceback."""
    check_usage(["endpoint", "--show-keys"], env={"TXPIPE_DEBUG": "1"})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "get_target", broken)
    plain = runner.invoke(app, ["endpoint"], env={"TXPIPE_DEBUG": None})
    assert plain.exit_code == 1 and plain.stderr.startswith("error: unexpected RuntimeError: a bug"), plain.stderr
    debug = runner.invoke(app, ["endpoint"], env={"TXPIPE_DEBUG": "1"})
    assert isinstance(debug.exception, RuntimeError), (debug.exception, debug.stderr)

"""A newcomer's first hour (issue 16): the README's quick start in a scratch home, then every command of the
operator's day with --help, --json and one typical mistake, in an 80-column terminal. What a person reads must
fit (no line past 80 columns, no cut figure or id), be words for people (no None, no "(s)", no traceback),
and every failure be one line with a non-zero exit."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app

REPO = Path(__file__).resolve().parents[2]
WIDTH = 80
# What a person must never read: Python's words, a placeholder, a cut, a lazy plural, a traceback.
UNWANTED = re.compile(r"\bNone\b|not run yet|…|\(s\)|Traceback|\bnan\b")
runner = CliRunner()


class Newcomer:
    def __init__(self, home: Path) -> None:
        self.env = {"TXPIPE_HOME": str(home), "COLUMNS": str(WIDTH), "TXPIPE_TARGET": "local"}

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env=self.env)
        assert result.exit_code == code, f"txpipe {' '.join(args)}: exit {result.exit_code}\n{result.output}"
        return result


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    """The README's quick start, command by command (the install aside: the tests run installed)."""
    person = Newcomer(tmp_path_factory.mktemp("newcomer") / "home")
    line = next(text for text in (REPO / "README.md").read_text().splitlines()
                if text.startswith("bash scripts/install.sh && "))
    try:
        for command in line.split(" && ")[1:]:
            words = shlex.split(command)
            assert words[0] == "txpipe", command
            person(*[str(REPO / w) if w.startswith("examples/") else w for w in words[1:]])
        yield person
    finally:
        runner.invoke(app, ["destroy", "--yes"], env=person.env)


def readable(text: str, what: str) -> None:
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, f"{what}: {len(wide)} line(s) past {WIDTH} columns, e.g. {wide[0]!r}"
    found = UNWANTED.search(text)
    assert found is None, f"{what}: says {found.group(0)!r} in:\n{text}"


# The operator's day (README's table), as a person types each command after the quick start.
DAY = [
    ["status"], ["sla-report"], ["report", "--state", "TX"], ["report", "--state", "Texas"], ["report", "--all"],
    ["rejected", "list"], ["dlq", "list"], ["endpoint"], ["endpoint", "--show-key"], ["logs", "sync"],
    ["logs", "store"], ["seed", "--generate", "5000"], ["sync-now"], ["refresh-views"], ["deploy"],
]


@pytest.mark.parametrize("args", DAY, ids=" ".join)
def test_each_command_reads_well_at_80_columns(newcomer: Newcomer, args: list[str]) -> None:
    result = newcomer(*args)
    readable(result.stdout, "txpipe " + " ".join(args))
    readable(result.stderr, "txpipe " + " ".join(args) + " (stderr)")


@pytest.mark.parametrize("args", [a for a in DAY if a[0] not in ("endpoint",)] + [["endpoint"]], ids=" ".join)
def test_each_command_speaks_json(newcomer: Newcomer, args: list[str]) -> None:
    out = newcomer(*args, "--json").stdout
    if args[0] == "logs":  # a record per line (NDJSON): --follow prints them as they come
        assert all(isinstance(json.loads(line), dict) for line in out.splitlines()), out
    else:
        json.loads(out)


def commands() -> list[list[str]]:
    """Every command the app has, groups' subcommands included, as a person would type it."""
    import typer.main

    root = typer.main.get_command(app)
    found = []
    for name, command in sorted(root.commands.items()):  # type: ignore[attr-defined]
        found.append([name])
        for sub in sorted(getattr(command, "commands", {})):
            found.append([name, sub])
    return found


@pytest.mark.parametrize("args", commands(), ids=" ".join)
def test_every_help_fits_and_every_mistake_is_one_line(newcomer: Newcomer, args: list[str]) -> None:
    readable(newcomer(*args, "--help").stdout, "txpipe " + " ".join(args) + " --help")
    mistake = newcomer(*args, "--no-such-option", code=2)
    lines = mistake.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), mistake.stderr
    readable(mistake.stderr, "a mistake")


def test_long_ids_and_timestamps_fold_whole_in_a_narrow_table(newcomer: Newcomer, tmp_path: Path) -> None:
    """A point-of-sale id of 64 characters, rejected (its customer unknown): listed whole, folded, never cut."""
    long_id = "pos-terminal-0042-" + "9" * 46
    orders = tmp_path / "unknown.ndjson"
    orders.write_text(json.dumps({"customer_id": 987654321, "type": "cheese", "qty": 1, "retail_price": 9.5,
                                  "order_id": long_id}) + "\n")
    newcomer("send", str(orders), code=0)
    for _ in range(100):
        listed = newcomer("rejected", "list").stdout
        if "rejected order pending" in listed:
            break
        import time

        time.sleep(0.1)
    readable(listed, "txpipe rejected list")
    first_column = "".join(line.split("│")[1].strip() for line in listed.splitlines() if line.startswith("│"))
    assert long_id in first_column, listed  # whole, though folded onto several lines


def test_a_second_seed_says_nothing_changed(newcomer: Newcomer) -> None:
    assert "nothing changed" in newcomer("seed", "--generate", "5000").stdout

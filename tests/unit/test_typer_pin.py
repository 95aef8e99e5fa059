"""Typer is pinned where txpipe patches it: txpipe_cli/app.py replaces two of Typer's internals (the type shown
after a flag in --help, and the pydantic coercion that slows every command's start), so pyproject.toml pins the
Typer they were written against, and these tests fail when a different Typer leaves them unapplied."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import typer.core

import txpipe_cli.app  # noqa: F401 - applies the patches

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_pins_the_typer_of_the_lock_file() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in dependencies if re.match(r"typer\b", d)]
    locked = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("typer==")]
    assert pinned == locked, "pin typer==X in pyproject.toml, X the version in constraints.txt"


def test_the_patches_took_on_the_pinned_typer() -> None:
    assert typer.core.TyperOption.display_type_rich.__module__ == "txpipe_cli.app"
    assert typer.core.build_runtime_param.__module__ == "txpipe_cli.app"

"""What starting txpipe loads (txpipe_cli/app.py): `txpipe --help`, `--version`, `endpoint` and `status` import
none of the libraries only some commands' bodies need; each command imports those inside its function.

Each case is a fresh interpreter (an import made by an earlier test would hide one); it checks which modules
were loaded, never how long anything took: the start-up benchmark (benchmarks/startup.py) times it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("uvicorn", "boto3", "botocore", "psycopg2", "pydantic", "redshift_connector")

# Runs txpipe as its console script does, then writes {heavy module: where txpipe first imported it} to argv[1].
PROBE = r"""
import builtins, json, sys, traceback

out, heavy, args = sys.argv[1], set(sys.argv[2].split(",")), sys.argv[3:]
first = {}
real_import = builtins.__import__

def spy(name, *rest, **kwargs):
    top = name.partition(".")[0]
    if top in heavy and top not in sys.modules and top not in first:
        ours = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                if "/txpipe_cli/" in f.filename or "/lambdas/" in f.filename or "/typer/" in f.filename]
        first[top] = " <- ".join(reversed(ours[-4:]))
    return real_import(name, *rest, **kwargs)

builtins.__import__ = spy
sys.argv = ["txpipe", *args]
from txpipe_cli.app import main
try:
    main()
except SystemExit:
    pass
loaded = sorted({name.partition(".")[0] for name in sys.modules} & heavy)
with open(out, "w") as file:
    json.dump({name: first.get(name, "?") for name in loaded}, file)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["endpoint"], ["status"]], ids=" ".join)
def test_start_imports_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    """endpoint and status run with nothing deployed: they parse their options, build the local target and say so."""
    out = tmp_path / "loaded.json"
    env = {**os.environ, "TXPIPE_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), ",".join(HEAVY), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.exists(), f"txpipe {' '.join(args)} did not finish:\n{result.stdout}\n{result.stderr}"
    loaded = json.loads(out.read_text())
    assert not loaded, f"txpipe {' '.join(args)} imported " + "; ".join(
        f"{name} (first from {where})" for name, where in loaded.items())


@pytest.mark.parametrize("function", ["lambdas.sync", "lambdas.refresh", "lambdas.ops"])
def test_a_function_that_validates_no_order_starts_without_pydantic(function: str) -> None:
    """A cold start pays for what the function uses: pydantic is the order rules' (ingest and store), and the
    history's id prefix, which those rules refuse from clients, lives with the history, not with them."""
    code = f"import sys, {function}; print('pydantic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.stdout.strip() == "False", result.stderr

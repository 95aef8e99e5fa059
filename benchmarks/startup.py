"""startup: each everyday command's start, wall time of a fresh process, median of N, beside `python -c pass`.

`txpipe --help`, `txpipe --version`, `txpipe endpoint` and `txpipe status` (the last two against the
benchmark's deployment: they read its state, and status asks its runtime), each run the same way after one
untimed run to warm the page cache. Bytecode is cached, as it is for an installed txpipe: a
PYTHONDONTWRITEBYTECODE in the environment (CI sets it) would otherwise charge every run the compiling of
txpipe's own sources, which an operator never pays; the cache lives in a temporary directory
(PYTHONPYCACHEPREFIX), so the working tree gets no __pycache__.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from benchmarks.stack import txpipe_executable

COMMANDS = {"help": ["--help"], "version": ["--version"], "endpoint": ["endpoint"], "status": ["status"]}


def _median_wall(command: list[str], runs: int, env: Mapping[str, str]) -> tuple[float, int]:
    """The median wall time of `runs` runs after one untimed one, and the last run's exit code (status exits 1
    when it finds a problem: its start is measured all the same)."""
    def once() -> int:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, env=env)  # noqa: S603 - fixed
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        return done.returncode

    once()
    times, code = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        code = once()
        times.append(time.perf_counter() - started)
    return statistics.median(times), code


def run(runs: int = 10, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Times each command in COMMANDS, with `env` (the deployment's TXPIPE_HOME) for all of them."""
    with tempfile.TemporaryDirectory(prefix="txpipe-bench-pycache-") as cache:
        env = {**(env or os.environ), "PYTHONPYCACHEPREFIX": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        floor, _ = _median_wall([sys.executable, "-c", "pass"], runs, env)
        out: dict[str, Any] = {"python_floor_s": round(floor, 3), "runs": runs, "bytecode": "cached", "exit": {}}
        for name, args in COMMANDS.items():
            seconds, out["exit"][name] = _median_wall([*txpipe_executable(), *args], runs, env)
            out[f"txpipe_{name}_s"] = round(seconds, 3)
    out["txpipe_over_floor_s"] = round(out["txpipe_help_s"] - floor, 3)
    return out

"""startup: `txpipe --help` wall time, median of 10, beside `python -c pass` (the floor).

Both are run as fresh processes the same way, after one untimed run of each to warm the page cache.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.stack import txpipe_executable


def _median_wall(command: list[str], runs: int) -> float:
    subprocess.run(command, capture_output=True, check=True, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(runs: int = 10) -> dict[str, Any]:
    txpipe = _median_wall([*txpipe_executable(), "--help"], runs)
    floor = _median_wall([sys.executable, "-c", "pass"], runs)
    return {"txpipe_help_s": round(txpipe, 3), "python_floor_s": round(floor, 3), "runs": runs,
            "txpipe_over_floor_s": round(txpipe - floor, 3)}

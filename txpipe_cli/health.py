"""What `status` calls a problem, for either target: the reasons it exits non-zero.

Pure: reads the dict a target's status() returns and lists one short reason per problem,
so the operator (and a monitoring script reading the exit code) learns why in one line.
"""

from __future__ import annotations

from typing import Any


def next_step(status: dict[str, Any], found: list[str]) -> str:
    """The command to run first about what `problems` found."""
    if any(not part.get("alive") for part in status.get("parts", {}).values()) or \
            (status.get("pipeline", {}).get("errors")) or status.get("pipeline_error"):
        return "txpipe deploy" + (" --target aws" if status.get("target") == "aws" else "")
    if any(p.startswith("the last scheduled sync failed") for p in found):
        return "txpipe logs sync"
    if any(p.startswith("alarm ") for p in found):
        return "txpipe logs --target aws"
    return "txpipe dlq list"


def problems(status: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for name, part in status.get("parts", {}).items():
        if not part.get("alive"):
            found.append(f"{name} {part.get('state', 'dead')}")
    for store, error in (status.get("pipeline", {}).get("errors") or {}).items():
        found.append(f"{store} unreachable ({error})")
    if status.get("pipeline_error"):
        found.append(f"pipeline figures unavailable ({status['pipeline_error']})")
    last_sync = ((status.get("schedules") or {}).get("sync") or {}).get("last_run") or {}
    if last_sync.get("error"):
        found.append(f"the last scheduled sync failed ({last_sync['error']})")
    for alarm, reason in (status.get("alarms") or {}).items():
        found.append(f"alarm {alarm} is firing ({reason})")
    dead_letters = (status.get("pipeline", {}).get("queue") or {}).get("dead_letters")
    if dead_letters:
        found.append(f"{dead_letters} dead letter(s) wait (txpipe dlq list)")
    return [" ".join(problem.split()) for problem in found]

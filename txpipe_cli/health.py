"""What `status` calls a problem, for either target: the reasons it exits non-zero.

Pure: reads the dict a target's status() returns and lists one short reason per problem,
so the operator (and a monitoring script reading the exit code) learns why in one line. Each problem
carries its kind, and next_step chooses the command to run first from the kinds, never from the words.
Only filesystem() looks at the machine (statvfs, injectable): the local target's status measures
with it the disk PostgreSQL writes to.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from lambdas.core.reasons import one_line
from txpipe_cli.humanize import plural

MIB = 1024 * 1024
# A filesystem PostgreSQL writes to is low under both of these (a small disk is not always low, a large one
# is not low while gigabytes are free), and full under DISK_FULL_BYTES: less than one WAL segment, which
# PostgreSQL may need to start next, or no inode left.
DISK_LOW_BYTES = 500 * MIB
DISK_LOW_FRACTION = 0.05
DISK_FULL_BYTES = 16 * MIB
# How PostgreSQL says it could not write (ENOSPC): a table could not grow, or any file (WAL) not be written.
NO_SPACE_MARKERS = ("no space left on device", "could not extend file")


class Kind(StrEnum):
    """What a problem is about, in the order next_step weighs them."""

    DISK = "disk"  # a filesystem PostgreSQL writes to is full or low
    PART_DOWN = "part down"  # a part (PostgreSQL, the runtime, the stack) is dead or hung
    UNREACHABLE = "unreachable"  # a store the status could not read
    NO_FIGURES = "no figures"  # none of the pipeline's figures could be read (the ops function failed)
    SYNC_FAILED = "sync failed"  # the last scheduled sync failed
    ALARM = "alarm"  # a CloudWatch alarm fires (AWS)
    DEAD_LETTERS = "dead letters"  # dead letters wait


class Problem(str):
    """One problem as the operator reads it, on one line, and its kind. A str, so JSON, joins and comparisons
    take it as the line it is."""

    kind: Kind

    def __new__(cls, kind: Kind, text: str) -> Problem:
        made = super().__new__(cls, " ".join(text.split()))
        made.kind = kind
        return made


def disk_state(free_bytes: int, size_bytes: int, free_inodes: int | None = None) -> str:
    """ "full", "low" or "ok" for a filesystem with these figures (free: what an unprivileged user may use)."""
    if free_bytes < DISK_FULL_BYTES or free_inodes == 0:
        return "full"
    if free_bytes < DISK_LOW_BYTES and free_bytes < size_bytes * DISK_LOW_FRACTION:
        return "low"
    return "ok"


def filesystem(path: Path, statvfs: Callable[[str], Any] = os.statvfs) -> dict[str, Any]:
    """The free space of the filesystem holding `path` (or its nearest existing parent), and its disk_state."""
    while not path.exists() and path != path.parent:
        path = path.parent
    figures = statvfs(str(path))
    size, free = figures.f_blocks * figures.f_frsize, figures.f_bavail * figures.f_frsize
    free_inodes = figures.f_favail if figures.f_files else None  # some filesystems have no inode count
    return {"path": str(path), "free_bytes": free, "size_bytes": size,
            "free_percent": round(100 * free / size, 1) if size else 0.0, "free_inodes": free_inodes,
            "state": disk_state(free, size, free_inodes), "fsid": getattr(figures, "f_fsid", None)}


def no_space_reported(text: str) -> str | None:
    """The last line of `text` (a server log's tail, an error) in which PostgreSQL says the disk is full."""
    lines = [line for line in text.splitlines() if any(m in line.lower() for m in NO_SPACE_MARKERS)]
    return one_line(lines[-1]) if lines else None


def human_size(count: int) -> str:
    """Bytes as the operator reads them: GiB from 1 GiB up, else MiB."""
    return f"{count / 1024**3:.1f} GiB" if count >= 1024**3 else f"{count / MIB:.0f} MiB"


def _short_of_space(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The measured filesystems that are full or low, each once (the data directory's and $TXPIPE_HOME's are
    often one filesystem)."""
    found, seen = [], set()
    for name, fs in ((status.get("disk") or {}).get("filesystems") or {}).items():
        key = fs.get("fsid") or fs["path"]
        if fs["state"] != "ok" and key not in seen:
            seen.add(key)
            found.append((name, fs))
    return found


def _disk_problems(status: dict[str, Any]) -> list[Problem]:
    """One problem per filesystem that is full or low; low is called full when PostgreSQL says so. What the
    server's log says counts only then (it keeps an old complaint after space was freed); an error of this
    status's own reads (or of the last sync) counts on its own, as where no disk is measured (aws: RDS)."""
    errors = [*(status.get("pipeline", {}).get("errors") or {}).values(), status.get("pipeline_error") or "",
              (((status.get("schedules") or {}).get("sync") or {}).get("last_run") or {}).get("error") or ""]
    now = next(filter(None, map(no_space_reported, errors)), None)
    reported = now or (status.get("disk") or {}).get("postgres_reported")
    found = []
    for name, fs in _short_of_space(status):
        full = fs["state"] == "full" or reported is not None
        inodes = " and no inode" if fs.get("free_inodes") == 0 else ""
        found.append(Problem(Kind.DISK, f"disk {'full' if full else 'low'}: {name} {fs['path']} has "
                             f"{human_size(fs['free_bytes'])} free of {human_size(fs['size_bytes'])} "
                             f"({fs['free_percent']:g}%){inodes}" + (f" (PostgreSQL: {reported})" if reported else "")))
    if now and not found:
        found.append(Problem(Kind.DISK, f"disk full (PostgreSQL: {now})"))
    return found


def next_step(status: dict[str, Any], found: list[Problem]) -> str:
    """The command to run first about what `problems` found, chosen by the problems' kinds."""
    kinds = {problem.kind for problem in found}
    if Kind.DISK in kinds:  # nothing helps before there is room again
        short = _short_of_space(status)
        where = short[0][1]["path"] if short else "the database's disk"
        # deploy starts PostgreSQL again if the full disk stopped it; the queued orders are then stored
        return f"txpipe deploy once space is freed on {where}"
    if kinds & {Kind.PART_DOWN, Kind.UNREACHABLE, Kind.NO_FIGURES}:
        return "txpipe deploy" + (" --target aws" if status.get("target") == "aws" else "")
    if Kind.SYNC_FAILED in kinds:
        return "txpipe logs sync"
    if Kind.ALARM in kinds:
        return "txpipe logs --target aws"
    return "txpipe dlq list"


def problems(status: dict[str, Any]) -> list[Problem]:
    found = _disk_problems(status)
    for name, part in status.get("parts", {}).items():
        if not part.get("alive"):
            found.append(Problem(Kind.PART_DOWN, f"{name} {part.get('state', 'dead')}"))
    for store, error in (status.get("pipeline", {}).get("errors") or {}).items():
        found.append(Problem(Kind.UNREACHABLE, f"{store} unreachable ({error})"))
    if status.get("pipeline_error"):
        found.append(Problem(Kind.NO_FIGURES, f"pipeline figures unavailable ({status['pipeline_error']})"))
    last_sync = ((status.get("schedules") or {}).get("sync") or {}).get("last_run") or {}
    if last_sync.get("error"):
        found.append(Problem(Kind.SYNC_FAILED, f"the last scheduled sync failed ({last_sync['error']})"))
    for alarm, reason in (status.get("alarms") or {}).items():
        found.append(Problem(Kind.ALARM, f"alarm {alarm} is firing ({reason})"))
    dead_letters = (status.get("pipeline", {}).get("queue") or {}).get("dead_letters")
    if dead_letters:
        verb = "waits" if dead_letters == 1 else "wait"
        found.append(Problem(Kind.DEAD_LETTERS, f"{plural(dead_letters, 'dead letter')} {verb} (txpipe dlq list)"))
    return found

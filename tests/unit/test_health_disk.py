"""The disk PostgreSQL writes to, as `status` judges it (txpipe_cli/health.py), from injected statvfs figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from txpipe_cli.health import DISK_FULL_BYTES, DISK_LOW_BYTES, MIB, disk_state, filesystem, next_step, problems

GIB = 1024 * MIB
NO_SPACE = ('could not extend file "base/16384/16412": No space left on device')


def statvfs(free: int, size: int, *, block: int = 4096, inodes: int = 1000, fsid: int = 7) -> Any:
    """An os.statvfs result with these figures in bytes (free: what an unprivileged user may still use)."""
    return os.statvfs_result((block, block, size // block, free // block + 10, free // block,
                              100_000 if inodes is not None else 0, inodes or 0, inodes or 0, 0, 255),
                             {"f_fsid": fsid})


def measured(free: int, size: int, **kwargs: Any) -> dict[str, Any]:
    return filesystem(Path("/"), lambda _: statvfs(free, size, **kwargs))


@pytest.mark.parametrize(("free", "size", "state"), [
    (77 * GIB, 252 * GIB, "ok"),
    (90 * GIB, 2048 * GIB, "ok"),  # 4.4%, but 90 GiB: not low
    (400 * MIB, 2 * GIB, "ok"),  # under 500 MiB, but 20%: a small disk is not low for being small
    (499 * MIB, 20 * GIB, "low"),  # 2.4% and under 500 MiB
    (18 * MIB, 400 * MIB, "low"),  # over a WAL segment, under 5% of a small disk
    (DISK_FULL_BYTES - 4096, 252 * GIB, "full"),  # less than a WAL segment
    (0, 64 * MIB, "full"),
])
def test_thresholds(free: int, size: int, state: str) -> None:
    assert disk_state(free, size) == state
    assert measured(free, size)["state"] == state


def test_no_inode_left_is_full_whatever_the_bytes() -> None:
    assert disk_state(10 * GIB, 100 * GIB, free_inodes=0) == "full"
    assert measured(10 * GIB, 100 * GIB, inodes=0)["state"] == "full"
    assert measured(10 * GIB, 100 * GIB, inodes=None)["free_inodes"] is None  # no inode count: not judged


def test_figures_are_those_an_unprivileged_server_may_use(tmp_path: Path) -> None:
    """f_bavail, not f_bfree (the root-reserved blocks are not PostgreSQL's); a path not there yet is
    measured at its nearest existing parent; the real call works."""
    fs = filesystem(tmp_path / "not" / "yet", lambda _: statvfs(100 * MIB, 1 * GIB))
    assert (fs["path"], fs["free_bytes"], fs["size_bytes"], fs["free_percent"]) == (
        str(tmp_path), 100 * MIB, 1 * GIB, 9.8)
    real = filesystem(tmp_path)
    assert real["size_bytes"] > 0 and real["state"] in ("ok", "low", "full")


def status(*filesystems: dict[str, Any], reported: str | None = None, **extra: Any) -> dict[str, Any]:
    names = ("postgres data", "$TXPIPE_HOME")
    return {"target": "local", "parts": {"postgres": {"alive": True}},
            "disk": {"filesystems": dict(zip(names, filesystems, strict=False)), "postgres_reported": reported},
            **extra}


def test_a_full_disk_is_named_once_with_what_postgres_said_and_what_to_do() -> None:
    """The data directory and $TXPIPE_HOME on one full filesystem: one problem, with PostgreSQL's words; the
    next step frees space, then deploys."""
    full = {**measured(3 * MIB, 256 * MIB), "path": "/srv/pg/data"}
    found = problems(status(full, {**full, "path": "/home/op/.local/state/txpipe"}, reported=NO_SPACE))
    assert found == [f"disk full: postgres data /srv/pg/data has 3 MiB free of 256 MiB (1.2%) "
                     f"(PostgreSQL: {NO_SPACE})"]
    assert next_step(status(full), found) == "txpipe deploy once space is freed on /srv/pg/data"


def test_low_is_a_problem_and_full_once_postgres_says_so() -> None:
    low = measured(DISK_LOW_BYTES // 2, 20 * GIB)
    assert problems(status(low)) == ["disk low: postgres data / has 250 MiB free of 20.0 GiB (1.2%)"]
    assert problems(status(low, reported=NO_SPACE))[0].startswith("disk full: postgres data / has 250 MiB")


def test_an_old_complaint_in_the_log_is_no_problem_once_space_is_free() -> None:
    """The server's log keeps 'No space left on device' after space was freed: with the disk ok, no problem."""
    assert problems(status(measured(50 * GIB, 252 * GIB), reported=NO_SPACE)) == []


def test_postgres_saying_so_in_an_error_is_a_full_disk_where_none_is_measured() -> None:
    """AWS has no local disk to measure: an error of the status's reads naming ENOSPC is the full disk."""
    found = problems({"target": "aws", "parts": {"stack": {"alive": True}},
                      "pipeline": {"errors": {"oltp": f"{NO_SPACE}\nHINT: Check free disk space."}}})
    assert found[0] == f"disk full (PostgreSQL: {NO_SPACE})"  # the line that says so
    assert next_step({"target": "aws"}, found) == "txpipe deploy once space is freed on the database's disk"


def test_plenty_of_space_is_no_problem() -> None:
    fs = measured(77 * GIB, 252 * GIB)
    assert problems(status(fs, fs)) == []

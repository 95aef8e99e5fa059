"""The local target lets one deploy or destroy run at a time per TXPIPE_HOME, and only its operator can hold
that lock: the lock file is 0600 in a 0700 home (another user who could open it could hold it)."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.state import LocalState
from txpipe_cli.local.target import LocalTarget


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_second_deploy_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    """A deploy started while another holds the home's lock fails at once and changes nothing."""
    home = tmp_path / "home"
    home.mkdir()
    with open(home / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TxpipeError, match="another txpipe deploy or destroy is running"):
            LocalTarget(home).deploy(PipelineSettings())
    assert LocalState.load(home) is None
    assert sorted(p.name for p in home.iterdir()) == [".lock"]


def test_the_lock_makes_a_0700_home_and_a_0600_lock_file(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    with LocalTarget(home)._exclusive():
        assert (mode(home), mode(home / ".lock")) == (0o700, 0o600)


def test_an_earlier_release_home_and_lock_are_tightened(tmp_path: Path) -> None:
    """0755 home, 0644 lock (what releases before issue 15 left): 0700 and 0600 at the next deploy or destroy."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # noqa: S103 - what an earlier release left
    (home / ".lock").touch(mode=0o644)
    os.chmod(home / ".lock", 0o644)
    with LocalTarget(home)._exclusive():
        pass
    assert (mode(home), mode(home / ".lock")) == (0o700, 0o600)


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (home / ".lock").symlink_to(target)
    with pytest.raises(OSError), LocalTarget(home)._exclusive():
        pass
    assert target.read_text() == "keep"


def test_an_earlier_release_server_data_under_home_stays_reachable(tmp_path: Path) -> None:
    """An earlier release, run as root, may have put PostgreSQL's data under a reachable home: the server's user
    must still reach it, so that home becomes 0711 (no listing, no writing) rather than 0700."""
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)  # noqa: S103 - what an earlier release left
    LocalState(home=home, pg_root=str(home / "pg"), pg_user="postgres").save()
    with LocalTarget(home)._exclusive():
        pass
    assert (mode(home), mode(home / ".lock"), mode(home / "local.json")) == (0o711, 0o600, 0o600)

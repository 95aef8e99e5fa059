"""The local target lets one deploy or destroy run at a time per TXPIPE_HOME."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.state import LocalState
from txpipe_cli.local.target import LocalTarget


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

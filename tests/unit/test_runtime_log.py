"""The local runtime's log: 0600, and rotated by size so that a flood of errors cannot fill the disk."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from txpipe_cli.local import runtime


def test_the_log_rotates_by_size_and_every_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "LOG_BYTES", 2_000)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    old_umask = os.umask(0o077)  # as runtime.main sets it
    try:
        runtime._log_to(tmp_path / "logs" / "runtime.log")
        for n in range(400):
            logging.getLogger("txpipe.test").error("poller: the database is away (%d)", n)
    finally:
        os.umask(old_umask)
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == ["runtime.log", "runtime.log.1", "runtime.log.2", "runtime.log.3"]
    assert all(f.stat().st_size <= 2_100 for f in files)
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o700

"""A full disk under the local PostgreSQL, for real: its data moved onto a small tmpfs, then filled.

Needs root (mount) and a kernel that lets this machine mount a tmpfs; `move_postgres_to_tmpfs` says why not
where it cannot, and leaves the server on its own disk then.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from txpipe_cli.local.pg import PgServer, find_bindir


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)  # noqa: S603 - fixed tools


def move_postgres_to_tmpfs(state: Any, mib: int, scratch: Path) -> Path | str:
    """Stops the deployment's PostgreSQL (LocalState `state`), mounts a `mib` MiB tmpfs over its data root and
    copies the files back onto it; returns that root, or why it could not (the files then stay where they
    were). The caller starts the server again (`txpipe deploy`) either way, and calls release_tmpfs once the
    server is stopped for good."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs under the PostgreSQL data directory"
    root = Path(state.pg_root)
    PgServer(root, state.pg_port, state.pg_user, find_bindir()).stop()
    if _run("cp", "-a", f"{root}/.", str(scratch)).returncode != 0:
        return f"cannot copy {root} aside"
    mount = _run("mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", str(root))
    if mount.returncode != 0:
        return f"cannot mount a tmpfs here: {mount.stderr.strip() or mount.returncode}"
    if state.pg_user:
        entry = pwd.getpwnam(state.pg_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    if _run("cp", "-a", f"{scratch}/.", str(root)).returncode != 0:
        release_tmpfs(root)
        return f"cannot copy the data onto the tmpfs at {root}"
    shutil.rmtree(scratch, ignore_errors=True)
    return root


def release_tmpfs(root: Path) -> None:
    """Unmounts the tmpfs (its data goes with it) once nothing uses it."""
    _run("umount", "--lazy", str(root))
    shutil.rmtree(root, ignore_errors=True)


def fill(directory: Path) -> int:
    """Writes a file until the filesystem has no byte left; returns its size."""
    chunk, written = b"\0" * (1024 * 1024), 0
    with open(directory / "filler", "wb", buffering=0) as handle:
        for size in (len(chunk), 4096, 1):
            try:
                while True:
                    written += handle.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return written

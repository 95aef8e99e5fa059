"""Everything under the state directory is the operator's alone (issue 15): after an operator's day (deploy,
seed, send, sync-now, the dashboard started and stopped, logs) every file under $TXPIPE_HOME is 0600 and every
directory 0700, the home itself and its lock file included.

Exempt, by design: the PostgreSQL server's data directory. Run as root, the server runs as an unprivileged user
(PostgreSQL refuses root) who must reach its data, which a 0700 home forbids: txpipe_cli/local/pg.py puts it in
a fresh 0700 directory of that user's under /var/tmp instead, outside the home, so it is not walked here (its
own mode is checked). Run as another user, the data sits in home/pg and is walked like the rest (PostgreSQL keeps
it 0700/0600 itself).
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dashboard import Dashboard
from tests.support.local_cli import Cli, local_home


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with local_home(tmp_path_factory, "e2e-modes") as cli:
        yield cli


def offenders(*roots: Path) -> list[str]:
    """'<mode> <path>' for every directory not 0700, every other entry (files, the socket) not 0600, every symlink."""
    found = []
    for root in roots:
        for directory, dirs, files in os.walk(root):  # subdirectories come as `directory` in turn; links do not
            here = Path(directory)
            for path in [here, *(here / name for name in files), *(here / d for d in dirs if (here / d).is_symlink())]:
                info = os.lstat(path)
                wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
                if stat.S_IMODE(info.st_mode) != wanted or stat.S_ISLNK(info.st_mode):
                    found.append(f"{stat.S_IMODE(info.st_mode):04o} {path}")
    return sorted(found)


def walked(cli: Cli) -> list[Path]:
    """The home, and the invoke socket's private directory when a long home put it elsewhere."""
    roots = [cli.home]
    socket_dir = cli.state.invoke_socket.parent
    if not socket_dir.is_relative_to(cli.home):
        roots.append(socket_dir)
    return roots


def test_every_file_is_0600_and_every_directory_0700_through_an_operators_day(cli: Cli, tmp_path: Path) -> None:
    seen = {"deploy": offenders(*walked(cli))}
    cli.json("seed", "--generate", "50")
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps([{"customer_id": 1 + i % 50, "type": "cheese", "qty": 1, "retail_price": 9.5}
                                  for i in range(20)]))
    cli.json("send", str(orders))
    cli.json("sync-now")
    seen["send, sync-now"] = offenders(*walked(cli))
    dashboard = Dashboard(cli.home)
    try:
        assert dashboard.json("/api/states/TX")["state"] == "TX"
        seen["dashboard running"] = offenders(*walked(cli))
    finally:
        dashboard.stop()
    cli("logs")
    seen["dashboard stopped, logs"] = offenders(*walked(cli))
    assert {step: found for step, found in seen.items() if found} == {}
    names = {p.name for p in cli.home.iterdir()}
    assert {".lock", "local.json", "secrets", "logs", "run"} <= names  # the walk saw what it is about


def test_the_server_data_is_outside_the_home_when_another_user_runs_the_server(cli: Cli) -> None:
    """The one exemption: the server's user must reach its data, so (as root) it lives in its own 0700 directory."""
    state = cli.state
    if state.pg_user is None:
        assert Path(state.pg_root).is_relative_to(cli.home)  # ours, walked above
        return
    root = Path(state.pg_root)
    assert not root.is_relative_to(cli.home) and root.parent == Path("/var/tmp")  # noqa: S108 - where pg.py puts it
    info = os.lstat(root)
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, pwd.getpwnam(state.pg_user).pw_uid)

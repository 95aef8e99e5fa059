"""private_home (txpipe_cli/local/state.py): the state directory is made the operator's alone, and a directory
txpipe did not make is never chmod'ed: refused if others may write to it, else used with one warning line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from txpipe_cli.errors import TxpipeError
from txpipe_cli.local.state import LocalState, private_home


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def made(path: Path, bits: int, *names: str) -> Path:
    path.mkdir()
    for name in names:
        (path / name).touch()
    os.chmod(path, bits)
    return path


def test_a_new_home_and_its_parents_are_created_and_the_home_is_0700(tmp_path: Path) -> None:
    private_home(tmp_path / "state" / "txpipe")
    assert mode(tmp_path / "state" / "txpipe") == 0o700


@pytest.mark.parametrize("names", [(), ("local.json", ".lock", "secrets", "logs", "run", "pg"),
                                   ("aws-dev.json", "aws-prod.json", "build"), (".local.jsonab12cd",)])
def test_a_home_txpipe_made_earlier_is_tightened(tmp_path: Path, names: tuple[str, ...]) -> None:
    home = made(tmp_path / "home", 0o755, *names)
    private_home(home)
    assert mode(home) == 0o700


def test_state_writes_create_a_0700_home(tmp_path: Path) -> None:
    """local.json and the secrets are written 0600 into a 0700 home, whichever comes first."""
    state = LocalState(home=tmp_path / "one")
    state.save()
    other = LocalState(home=tmp_path / "two")
    other.api_key()
    assert (mode(state.home), mode(state.path)) == (0o700, 0o600)
    assert (mode(other.home), mode(other.secret_dir), mode(other.secret_dir / "api-key.json")) == (0o700, 0o700, 0o600)


def test_a_directory_with_other_files_is_left_as_it_is_with_one_warning(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    home = made(tmp_path / "project", 0o755, "notes.txt", "local.json")
    private_home(home)
    private_home(home)
    assert mode(home) == 0o755
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"warning: {home} (mode 0755) is open to other users; txpipe leaves it as it is (other files are "
                    "kept there) and keeps its own files in it 0600")


@pytest.mark.parametrize("bits", [0o777, 0o775, 0o1777])
def test_a_directory_others_may_write_to_is_refused_untouched(tmp_path: Path, bits: int) -> None:
    home = made(tmp_path / "shared", bits, "their-file")
    with pytest.raises(TxpipeError, match="other users may write to it") as refused:
        private_home(home)
    assert mode(home) == bits
    assert refused.value.hint == f"choose another --home, or let only yourself write to it: chmod go-w {home}"


def test_a_file_is_not_a_home(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    with pytest.raises(TxpipeError, match="is not a directory"):
        private_home(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
@pytest.mark.parametrize(("bits", "refused"), [(0o770, True), (0o755, False), (0o700, False)])
def test_another_users_directory_is_never_chmoded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  bits: int, refused: bool) -> None:
    """Even empty (as txpipe would have made it): it is not ours. Writable by others: refused; else a warning
    (its owner may change what is in it, whatever its mode)."""
    home = made(tmp_path / "theirs", bits)
    os.chown(home, 65534, 65534)  # nobody
    if refused:
        with pytest.raises(TxpipeError, match=r"owner nobody\): other users may write to it"):
            private_home(home)
    else:
        private_home(home)
        assert capsys.readouterr().err == (f"warning: {home} (mode {bits:04o}, owner nobody) is not yours: nobody may "
                                           "change what txpipe keeps there; txpipe leaves it as it is\n")
    assert mode(home) == bits

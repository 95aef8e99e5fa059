"""A PostgreSQL server owned by txpipe: initdb, start, stop, create databases.

PostgreSQL refuses to run as root. When txpipe runs as root, the server runs as
an unprivileged user (TXPIPE_PG_USER, else `postgres` if it exists, else
`nobody`), and its data directory must be reachable by that user: if the
requested place is not (say under /root, which is 0700), the data goes to a fresh
directory with an unpredictable name in /var/tmp (mkdtemp, 0700) and the state file
records where. A place that is a symlink is refused: /var/tmp is anyone's to write.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from txpipe_cli.errors import TxpipeError


def find_bindir() -> Path:
    """TXPIPE_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH."""
    candidates = [os.environ.get("TXPIPE_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise TxpipeError("PostgreSQL server binaries not found",
                      hint="install them with: apt-get install -y postgresql (or set TXPIPE_PG_BIN)")


def server_user() -> str | None:
    """The user the server runs as, or None to run as ourselves (when not root)."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("TXPIPE_PG_USER"), "postgres", "nobody"):
        if name:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
    raise TxpipeError("no unprivileged user to run PostgreSQL as", hint="set TXPIPE_PG_USER to an existing user")


def _as_user(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def reachable(path: Path, user: str | None) -> bool:
    if user is None:
        return True
    # Asked of the server user itself (permissions of every parent, ACLs): coreutils' test, by full path.
    test = shutil.which("test") or "/usr/bin/test"
    return subprocess.run([test, "-x", str(path)], **_as_user(user), check=False).returncode == 0  # noqa: S603


def choose_data_root(home: Path, user: str | None) -> Path:
    """Where the server's files go: under home if the server user can reach it."""
    if reachable(home, user):
        return home / "pg"
    return Path(tempfile.mkdtemp(prefix="txpipe-pg-", dir="/var/tmp"))


@dataclass
class PgServer:
    root: Path  # holds data/ and server.log
    port: int
    user: str | None
    bindir: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # The PostgreSQL binaries of the bindir found at deploy, with arguments txpipe builds: no shell.
        proc = subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,  # noqa: S603
                              timeout=timeout, check=False, cwd="/", **_as_user(self.user))
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise TxpipeError(f"{args[0]} failed: {detail[-1] if detail else proc.returncode}",
                              hint=f"see {self.log_file}")
        return proc

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, superuser: str, password: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.root.is_symlink() or not self.root.is_dir():
            raise TxpipeError(f"refusing to put the database under {self.root}: it is not a plain directory")
        if os.lstat(self.root).st_uid not in (os.getuid(), _as_user(self.user).get("user", os.getuid())):
            raise TxpipeError(f"refusing to put the database under {self.root}: another user owns it")
        os.chmod(self.root, 0o700)
        self._chown(self.root)
        # The password goes through a 0600 file owned by the server user, never the command line.
        fd, pwfile = tempfile.mkstemp(dir=self.root, prefix=".pw")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self._chown(Path(pwfile))
            self._run("initdb", "-D", str(self.data_dir), "-U", superuser, f"--pwfile={pwfile}",
                      "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
        finally:
            os.unlink(pwfile)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# txpipe local target\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
                "log_min_messages = warning\n"
            )

    def running(self) -> bool:
        """The postmaster named in postmaster.pid is alive and is this server's (pg_ctl status alone
        calls a just-killed, not yet reaped postmaster running)."""
        return self.initialized() and self.postmaster_pid() is not None

    def start(self, attempts: int = 10) -> None:
        """Starts the server. Right after a postmaster was killed its backends may still hold the shared
        memory for a moment, and the new postmaster refuses to start: then it is tried again."""
        for attempt in range(1, attempts + 1):
            # The port is passed at start so a redeploy can move it if the old one was taken.
            proc = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30",
                             "-o", f"-p {int(self.port)}", check=attempt == attempts)
            if proc.returncode == 0:
                return
            time.sleep(1.0)

    def stop(self) -> None:
        """Fast shutdown; if the server does not go (hung), immediate; then the postmaster is killed."""
        for mode in ("fast", "immediate"):
            if not self.running():
                return
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "20", check=False)
        pid = self.postmaster_pid()
        if pid:
            os.kill(pid, 9)

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, checked against its command line (a recycled pid is not ours)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"postgres" in cmdline and str(self.data_dir).encode() in cmdline else None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

"""The local target's record of what it deployed: $TXPIPE_HOME/local.json.

Ports, process ids, where the server's files are, and the deployed pipeline
settings. Written atomically so a crash mid-write never leaves half a file.
Secrets live beside it in secrets/ (0700), one 0600 file each, never in this file:
the server's superuser (used by `deploy` alone), one database user per function
and one for the queue's pollers, and the orders API key.

The state directory is the operator's alone (issue 15): home 0700, every file in it 0600 and every
directory 0700 (private_home). The PostgreSQL server's files are the exception, and live elsewhere when
the server runs as another user (txpipe_cli/local/pg.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lambdas.core import defaults
from lambdas.core.db import Endpoint
from lambdas.functions import FUNCTIONS
from txpipe_cli.errors import TxpipeError

DATABASES = {"oltp": "txpipe_oltp", "warehouse": "txpipe_warehouse", "queue": "txpipe_queue"}
SUPERUSER = "txpipe"
QUEUE_NAME = "orders"
ESM_ROLE = "txpipe_esm"  # the event source mapping's own user: it receives and deletes, nothing else
# A Unix socket's path must fit in sun_path (108 bytes on Linux); longer homes get a private directory.
SOCKET_PATH_LIMIT = 100
# What txpipe keeps in its home (local and AWS targets), and the temporary files it replaces them through: a home
# holding nothing else is txpipe's own to tighten (private_home).
HOME_ENTRIES = re.compile(r"local\.json|\.local\.json.*|secrets|logs|pg|run|build|\.lock|aws-[^/]+\.json")


@dataclass
class LocalState:
    home: Path
    pg_root: str = ""
    pg_user: str | None = None
    pg_port: int = 0
    api_port: int = 0
    runtime_pid: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)  # pollers, batch size, queue settings, socket path

    @property
    def path(self) -> Path:
        return self.home / "local.json"

    @property
    def secret_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def secret_file(self) -> Path:
        """The server superuser's credentials: deploy's own, never handed to a function."""
        return self.secret_dir / "postgres.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def esm_role(self) -> str:
        return ESM_ROLE

    @classmethod
    def load(cls, home: Path) -> LocalState | None:
        path = home / "local.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(home=home, **{k: v for k, v in data.items() if k != "home"})

    def save(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".local.json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------ secrets

    def _secret(self, name: str, make: dict[str, str]) -> dict[str, str]:
        """secrets/<name>.json, created once with `make` (0600, O_EXCL: never over another file)."""
        path = self.secret_dir / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secret_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.secret_dir, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(make, handle)
        return make

    def ensure_secret(self) -> str:
        """The server superuser's password: generated once."""
        return self._secret("postgres", {"username": SUPERUSER, "password": secrets.token_urlsafe(24)})["password"]

    def role_secret(self, role: str) -> dict[str, str]:
        """A database user's credentials: generated once."""
        return self._secret(role, {"username": role, "password": secrets.token_urlsafe(24)})

    def api_key(self) -> str:
        """The orders API key clients send as x-api-key: generated once, as API Gateway's usage plan key."""
        return self._secret("api-key", {"api_key": secrets.token_urlsafe(32)})["api_key"]

    # ------------------------------------------------------------------ endpoints

    def endpoint(self, name: str, role: str | None = None) -> Endpoint:
        """A database as the superuser (deploy) or as `role` (a function, the pollers)."""
        secret = self.secret_file if role is None else self.secret_dir / f"{role}.json"
        return Endpoint("127.0.0.1", self.pg_port, DATABASES[name], f"file:{secret}")

    def roles(self) -> list[str]:
        return [f.db_user for f in FUNCTIONS.values()] + [ESM_ROLE]

    def function_env(self, name: str) -> dict[str, str]:
        """The environment the function sees: the same variables CloudFormation sets on AWS, with the
        function's own database user."""
        function = FUNCTIONS[name]
        env: dict[str, str] = {}
        for database in function.databases:
            env.update(self.endpoint(database, role=function.db_user).to_env(database))
        if "warehouse" in function.databases:
            env["TXPIPE_WAREHOUSE_KIND"] = "postgres"
        if "queue" in function.databases:
            env["TXPIPE_QUEUE_URL"] = f"pgqueue://{QUEUE_NAME}"
            env["TXPIPE_QUEUE_VISIBILITY_TIMEOUT"] = str(self.settings.get("visibility_timeout_seconds",
                                                                           defaults.VISIBILITY_TIMEOUT_SECONDS))
            env["TXPIPE_QUEUE_MAX_RECEIVE_COUNT"] = str(self.settings.get("max_receive_count",
                                                                          defaults.MAX_RECEIVE_COUNT))
        if name == "sync":
            env["TXPIPE_SYNC_MAX_SECONDS"] = str(self.runtime.get("sync_max_seconds", defaults.SYNC_MAX_SECONDS))
            # A tuning knob the runtime passes on from its own environment (the benchmarks shrink it).
            if os.environ.get("TXPIPE_SYNC_BATCH_ROWS"):
                env["TXPIPE_SYNC_BATCH_ROWS"] = os.environ["TXPIPE_SYNC_BATCH_ROWS"]
        return env

    # ------------------------------------------------------------------ the runtime's sockets

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def invoke_socket(self) -> Path:
        """The Invoke API's Unix socket, chosen at deploy (see choose_invoke_socket)."""
        return Path(self.runtime.get("invoke_socket") or self.home / "run" / "invoke.sock")

    def choose_invoke_socket(self) -> Path:
        """run/invoke.sock under home (0700), or, when that path is too long for a socket, a fresh
        private directory (mkdtemp: unpredictable name, 0700) in the system's temporary directory."""
        wanted = self.home / "run" / "invoke.sock"
        if len(str(wanted)) <= SOCKET_PATH_LIMIT:
            wanted.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(wanted.parent, 0o700)
            return wanted
        current = self.runtime.get("invoke_socket")
        if current and private_dir(Path(current).parent):
            return Path(current)
        return Path(tempfile.mkdtemp(prefix="txpipe-run-")) / "invoke.sock"


def private_dir(path: Path) -> bool:
    """A real directory (not a symlink) that we own and nobody else can enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


_warned: set[Path] = set()


def private_home(home: Path, *, traversable: bool = False) -> None:
    """Makes the state directory the operator's alone: created 0700, or tightened to 0700 when it is ours and
    holds nothing but txpipe's files (an earlier release made it 0755, and its lock file 0644: anyone could
    hold that lock, and so block deploy and destroy). `traversable`: 0711, for a deployment whose PostgreSQL
    data an earlier release put under home, which the server's user must still reach.

    A directory txpipe did not make (another user's, or one holding other files) is never chmod'ed: refused
    when other users may write to it (they could swap local.json, whose paths deploy starts and destroy
    deletes), else used as it is, with a one-line warning on stderr (once per process).
    """
    mode = 0o711 if traversable else 0o700
    try:
        info = os.stat(home)
    except FileNotFoundError:
        home.mkdir(mode=0o700, parents=True)
        os.chmod(home, mode)
        return
    if not stat.S_ISDIR(info.st_mode):
        raise TxpipeError(f"{home} is not a directory", hint="choose another --home")
    ours = info.st_uid == os.getuid()
    if ours and not stat.S_IMODE(info.st_mode) & ~mode & 0o777:
        return
    if ours and all(HOME_ENTRIES.fullmatch(name) for name in os.listdir(home)):
        os.chmod(home, mode)
        return
    owner = _user(info.st_uid)
    described = f"mode {stat.S_IMODE(info.st_mode):04o}" + ("" if ours else f", owner {owner}")
    if info.st_mode & 0o022:
        raise TxpipeError(f"refusing to keep txpipe's state in {home} ({described}): other users may write to it",
                          hint=f"choose another --home, or let only yourself write to it: chmod go-w {home}")
    if home not in _warned:
        _warned.add(home)
        print(f"warning: {home} ({described}) " + (
            "is open to other users; txpipe leaves it as it is (other files are kept there) and keeps its own files "
            "in it 0600" if ours else f"is not yours: {owner} may change what txpipe keeps there; txpipe leaves it "
            "as it is"), file=sys.stderr)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)

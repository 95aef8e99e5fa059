"""The local target's record of what it deployed: $TXPIPE_HOME/local.json.

Ports, process ids, where the server's files are, and the deployed pipeline
settings. Written atomically so a crash mid-write never leaves half a file.
Secrets live beside it in secrets/, 0600, and never in this file.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lambdas.core.db import Endpoint

DATABASES = {"oltp": "txpipe_oltp", "warehouse": "txpipe_warehouse", "queue": "txpipe_queue"}
SUPERUSER = "txpipe"
QUEUE_NAME = "orders"


@dataclass
class LocalState:
    home: Path
    pg_root: str = ""
    pg_user: str | None = None
    pg_port: int = 0
    api_port: int = 0
    runtime_pid: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)  # pollers, batch size, queue settings

    @property
    def path(self) -> Path:
        return self.home / "local.json"

    @property
    def secret_file(self) -> Path:
        return self.home / "secrets" / "postgres.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @classmethod
    def load(cls, home: Path) -> LocalState | None:
        path = home / "local.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(home=home, **{k: v for k, v in data.items() if k != "home"})

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".local.json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.path)

    def ensure_secret(self) -> str:
        """The local database password: generated once, kept 0600 under $TXPIPE_HOME/secrets."""
        if self.secret_file.exists():
            return json.loads(self.secret_file.read_text())["password"]
        self.secret_file.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secret_file.parent, 0o700)
        password = secrets.token_urlsafe(24)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"username": SUPERUSER, "password": password}, handle)
        return password

    def endpoint(self, name: str) -> Endpoint:
        return Endpoint("127.0.0.1", self.pg_port, DATABASES[name], f"file:{self.secret_file}")

    def function_env(self) -> dict[str, str]:
        """The environment every handler sees: the same variables CloudFormation sets on AWS."""
        env: dict[str, str] = {}
        for name in DATABASES:
            env.update(self.endpoint(name).to_env(name))
        env["TXPIPE_WAREHOUSE_KIND"] = "postgres"
        env["TXPIPE_QUEUE_URL"] = f"pgqueue://{QUEUE_NAME}"
        env["TXPIPE_QUEUE_VISIBILITY_TIMEOUT"] = str(self.settings.get("visibility_timeout_seconds", 30))
        env["TXPIPE_QUEUE_MAX_RECEIVE_COUNT"] = str(self.settings.get("max_receive_count", 5))
        env["TXPIPE_SYNC_MAX_SECONDS"] = str(self.runtime.get("sync_max_seconds", 100))
        return env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

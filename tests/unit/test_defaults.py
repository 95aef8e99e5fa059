"""lambdas/core/defaults.py is where every reader finds its default: the sync function, the local queue, the
local function environment and runtime, the deploy settings and deploy's help. (The template's side:
tests/aws/test_template_defaults.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from lambdas import sync
from lambdas.core import defaults, env
from lambdas.core.db import Endpoint
from lambdas.core.queue import PgQueue, queue_from_env
from lambdas.core.sync import SyncResult
from lambdas.functions import FUNCTIONS
from txpipe_cli.app import app
from txpipe_cli.config import PipelineSettings, default_sync_every
from txpipe_cli.local.state import LocalState
from txpipe_cli.local.target import RUNTIME_DEFAULTS


def test_a_sync_run_fits_its_function() -> None:
    """Batches start within SYNC_MAX_SECONDS, a run ends within SYNC_RUN_SECONDS, well inside the function's
    timeout; and the handler's own cap (half the time left) never cuts the budget on a fresh invocation."""
    timeout = FUNCTIONS["sync"].timeout_seconds
    assert defaults.SYNC_MAX_SECONDS < defaults.SYNC_RUN_SECONDS <= timeout
    assert defaults.SYNC_MAX_SECONDS <= timeout * 0.5


def test_the_sync_function_falls_back_on_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no TXPIPE_SYNC_ variable set, the handler runs with SYNC_BATCH_ROWS and SYNC_MAX_SECONDS."""
    seen: dict[str, Any] = {}

    def run_sync(oltp: Any, warehouse: Any, **kwargs: Any) -> SyncResult:
        seen.update(kwargs)
        return SyncResult(synced=0, pending=0, seconds=0.0, batches=0, oldest_pending_seconds=0.0)

    for name in defaults.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sync, "run_sync", run_sync)
    monkeypatch.setattr(env, "oltp", lambda: None)
    monkeypatch.setattr(env, "warehouse_backend", lambda: None)
    sync.handler({"source": "aws.events"}, None)
    assert (seen["batch_rows"], seen["max_seconds"]) == (defaults.SYNC_BATCH_ROWS, defaults.SYNC_MAX_SECONDS)


def test_the_local_queue_falls_back_on_the_defaults() -> None:
    """A function's pgqueue without its TXPIPE_QUEUE_ settings, and a PgQueue built without them, hide a
    message VISIBILITY_TIMEOUT_SECONDS and dead-letter it after MAX_RECEIVE_COUNT receives (no connection made)."""
    variables = {"TXPIPE_QUEUE_URL": "pgqueue://orders", **Endpoint("127.0.0.1", 1, "q", "file:/x").to_env("queue")}
    for queue in (queue_from_env(variables), PgQueue(lambda: None)):
        assert isinstance(queue, PgQueue)
        assert queue.visibility_timeout == defaults.VISIBILITY_TIMEOUT_SECONDS
        assert queue.max_receive_count == defaults.MAX_RECEIVE_COUNT


def test_the_local_function_environment_falls_back_on_the_defaults(tmp_path: Path) -> None:
    """A state that records no settings and no runtime options gives the functions ENVIRONMENT's values."""
    state = LocalState(home=tmp_path, pg_port=5432)
    assert state.function_env("sync")["TXPIPE_SYNC_MAX_SECONDS"] == defaults.ENVIRONMENT["TXPIPE_SYNC_MAX_SECONDS"]
    store = state.function_env("store")
    for name in ("TXPIPE_QUEUE_VISIBILITY_TIMEOUT", "TXPIPE_QUEUE_MAX_RECEIVE_COUNT"):
        assert store[name] == defaults.ENVIRONMENT[name], name


def test_the_local_runtime_and_the_settings_start_from_the_defaults() -> None:
    """The runtime's options and a deploy's settings with nothing given are the defaults."""
    assert RUNTIME_DEFAULTS == {"pollers": defaults.LOCAL_POLLERS, "batch_size": defaults.STORE_BATCH_SIZE,
                                "batch_window": defaults.LOCAL_BATCH_WINDOW_SECONDS,
                                "sync_max_seconds": defaults.SYNC_MAX_SECONDS}
    settings = PipelineSettings()
    assert (settings.sla_seconds, settings.sync_every_seconds, settings.refresh_at,
            settings.visibility_timeout_seconds, settings.max_receive_count) == (
        defaults.SLA_SECONDS, defaults.LOCAL_SYNC_EVERY_SECONDS, defaults.REFRESH_AT,
        defaults.VISIBILITY_TIMEOUT_SECONDS, defaults.MAX_RECEIVE_COUNT)
    assert default_sync_every("local", defaults.SLA_SECONDS) == defaults.LOCAL_SYNC_EVERY_SECONDS


def test_deploy_help_names_the_defaults() -> None:
    """Each '[until given: ...]' of deploy's options is the default it names."""
    helps = {p.name: p.help or "" for p in get_command(app).commands["deploy"].params}
    aws_minutes = default_sync_every("aws", defaults.SLA_SECONDS) / 60
    assert (f"[until given: local {defaults.LOCAL_SYNC_EVERY_SECONDS / 60:g}m; aws " in helps["sync_every"]
            and f"{aws_minutes:g}m for {defaults.SLA_SECONDS:g} s]" in helps["sync_every"])
    assert helps["sla"].endswith(f"[until given: {defaults.SLA_SECONDS:g}]")
    assert helps["refresh_at"].endswith(f"[until given: {defaults.REFRESH_AT}]")
    assert helps["visibility_timeout"].endswith(f"[until given: {defaults.VISIBILITY_TIMEOUT_SECONDS:g}]")
    assert helps["max_receive_count"].endswith(f"[until given: {defaults.MAX_RECEIVE_COUNT}]")

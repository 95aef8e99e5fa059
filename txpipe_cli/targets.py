"""Where the pipeline runs. Commands talk to a target, never to a database or boto3 directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from txpipe_cli import config
from txpipe_cli.errors import ExitStatus, TxpipeError

TARGETS = ("local", "aws")


class Target(Protocol):
    name: str

    @property
    def api_url(self) -> str: ...
    def api_headers(self) -> dict[str, str]: ...
    def deployed_settings(self) -> dict[str, Any]: ...
    def deploy(self, settings: config.PipelineSettings, step: Callable[[str], None] = ..., *,
               plan: bool = ..., parameters: dict[str, str] | None = ...,
               on_event: Callable[[dict[str, Any]], None] = ...) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def destroy(self, on_event: Callable[[dict[str, Any]], None] = ...) -> dict[str, Any]: ...
    def invoke(self, function: str, payload: dict[str, Any], timeout: float = ...) -> Any: ...


def get_target(name: str, home: Path | None = None, stage: str = "dev") -> Target:
    if name == "local":
        from txpipe_cli.local.target import LocalTarget

        return LocalTarget(home or config.home())
    if name == "aws":
        from txpipe_cli.aws.target import AwsTarget

        return AwsTarget(home or config.home(), stage)
    raise TxpipeError(f"unknown target {name!r}", hint=f"one of: {', '.join(TARGETS)}", code=ExitStatus.USAGE)

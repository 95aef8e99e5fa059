"""Where the pipeline runs. Commands talk to a target, never to a database or boto3 directly.

Every target offers the same operations with the same arguments. What only one target understands
(the AWS target's `--plan` and `--param`) is given to it when it is built, by `get_target`, which
refuses it for a target that has no use for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from txpipe_cli import config
from txpipe_cli.errors import OptionError

TARGETS = ("local", "aws")


class Target(Protocol):
    name: str

    @property
    def api_url(self) -> str: ...
    def api_headers(self) -> dict[str, str]: ...
    def deployed_settings(self) -> dict[str, Any]: ...

    def deploy(self, settings: config.PipelineSettings, step: Callable[[str], None] = ..., *,
               on_event: Callable[[dict[str, Any]], None] = ...) -> dict[str, Any]:
        """Provisions or updates everything, idempotently. The result carries `target` and `changed`, and
        either `changes` (a target planned through change sets) or `actions` (one that converges part by
        part); the deploy command renders it by that shape."""
        ...

    def status(self) -> dict[str, Any]: ...
    def destroy(self, on_event: Callable[[dict[str, Any]], None] = ...) -> dict[str, Any]: ...
    def invoke(self, function: str, payload: dict[str, Any], timeout: float = ...) -> Any: ...


def get_target(name: str, home: Path | None = None, stage: str = "dev", *, plan: bool = False,
               parameters: Mapping[str, str] | None = None) -> Target:
    """The named target; `plan` (stop at the change set) and `parameters` (template parameters) are the
    AWS target's deploy options."""
    if name == "local":
        if plan or parameters:
            raise OptionError("--plan and --param apply to --target aws only",
                              hint="the local target's deploy is already idempotent: just run it")
        from txpipe_cli.local.target import LocalTarget

        return LocalTarget(home or config.home())
    if name == "aws":
        from txpipe_cli.aws.deployer import DeployOptions
        from txpipe_cli.aws.target import AwsTarget

        return AwsTarget(home or config.home(), stage, options=DeployOptions(plan, dict(parameters or {})))
    raise OptionError(f"--target {name!r} is not one of {', '.join(TARGETS)}")

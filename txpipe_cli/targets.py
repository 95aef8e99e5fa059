"""Where the pipeline runs. Commands talk to a target, never to a database or boto3 directly.

Every target offers the same operations with the same arguments. What only some targets understand
(`--plan`, the AWS target's `--param`, the orders a month an estimate is for) is given to a target when it is
built, by `get_target`, which refuses what a target has no use for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from txpipe_cli import config
from txpipe_cli.errors import OptionError

if TYPE_CHECKING:
    from datetime import datetime

    from txpipe_cli.log_records import LogRecord

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
        part); the deploy command renders it by that shape. A plan's result, or a deploy's that knows its
        cost, carries `estimate` (pricing.Estimate.to_dict); a deploy that is about to create billable
        resources first sends on_event one `{"estimate": ...}` event."""
        ...

    def status(self) -> dict[str, Any]: ...
    def destroy(self, on_event: Callable[[dict[str, Any]], None] = ...) -> dict[str, Any]: ...
    def invoke(self, function: str, payload: dict[str, Any], timeout: float = ...) -> Any:
        """Runs a function once and returns its answer, waiting at most `timeout` seconds: a function that has
        not answered by then is a TxpipeError (it may still be running, and is never invoked again). The ops
        function's actions, typed: txpipe_cli.ops_client.OpsClient over this."""
        ...

    def logs(self, function: str | None, since: datetime, follow: bool = False, *,
             caught_up: Callable[[], None] = ...) -> Iterator[LogRecord]:
        """What the functions logged since `since`, oldest first (`function`: one of them; None: all); with
        `follow`, then (`caught_up()` called in between) each new record until the caller stops reading."""
        ...


def get_target(name: str, home: Path | None = None, stage: str = "dev", *, plan: bool = False,
               parameters: Mapping[str, str] | None = None,
               orders_per_month: int = config.DEFAULT_ORDERS_PER_MONTH) -> Target:
    """The named target, with its deploy options: `plan` (apply nothing: the AWS target stops at the change
    set), `parameters` (the AWS template's) and `orders_per_month` (what the cost estimate assumes)."""
    if name == "local":
        if parameters:
            raise OptionError("--param applies to --target aws only",
                              hint="the local target has no template; its settings are deploy's own flags")
        from txpipe_cli.local.target import LocalTarget

        local = LocalTarget(home or config.home())
        return LocalPlan(local, orders_per_month) if plan else local
    if name == "aws":
        from txpipe_cli.aws.deployer import DeployOptions
        from txpipe_cli.aws.target import AwsTarget

        return AwsTarget(home or config.home(), stage,
                         options=DeployOptions(plan, dict(parameters or {}), orders_per_month))
    raise OptionError(f"--target {name!r} is not one of {', '.join(TARGETS)}")


class LocalPlan:
    """`deploy --target local --plan`: the local target, whose deploy applies nothing and says what it costs:
    nothing, as it runs on this machine. Every other operation is the local target's own."""

    name = "local"

    def __init__(self, local: Target, orders_per_month: int) -> None:
        self.local, self.orders_per_month = local, orders_per_month

    @property
    def api_url(self) -> str:
        return self.local.api_url

    def api_headers(self) -> dict[str, str]:
        return self.local.api_headers()

    def deployed_settings(self) -> dict[str, Any]:
        return self.local.deployed_settings()

    def deploy(self, settings: config.PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        from txpipe_cli.aws.pricing import local_estimate

        return {"target": "local", "action": "planned", "changed": False, "actions": {},
                "estimate": local_estimate(self.orders_per_month).to_dict()}

    def status(self) -> dict[str, Any]:
        return self.local.status()

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        return self.local.destroy(on_event)

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        return self.local.invoke(function, payload, timeout)

    def logs(self, function: str | None, since: datetime, follow: bool = False, *,
             caught_up: Callable[[], None] = lambda: None) -> Iterator[LogRecord]:
        return self.local.logs(function, since, follow, caught_up=caught_up)

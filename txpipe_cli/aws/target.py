"""The AWS target: the same operator commands, through CloudFormation, Lambda and SQS.

Every read of the private databases goes through the ops function inside the VPC;
nothing here connects to a database. What deploy resolved (function names, API
URL and key id, queue URLs) is read back from $TXPIPE_HOME/aws-<stage>.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.deployer import Deployer, DeployOptions, function_name
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError
from txpipe_cli.ops_client import OpsClient

if TYPE_CHECKING:
    from datetime import datetime

    from txpipe_cli.log_records import LogRecord

HEALTHY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
ALARMS = ("dead-letters", "sync-errors", "sla-at-risk")  # infra/template.yaml


class AwsTarget:
    name = "aws"

    def __init__(self, home: Path, stage: str = "dev", aws: AwsClient | None = None, *,
                 options: DeployOptions | None = None) -> None:
        self.home, self.stage = home, stage
        self.aws = aws or AwsClient()
        self.deployer = Deployer(self.aws, home, stage)
        self.options = options or DeployOptions()  # --plan, --param: this target's own deploy options

    def _record(self) -> dict[str, Any]:
        path = self.deployer.record_path
        if not path.exists():
            raise TxpipeError(f"no AWS deployment of stage {self.stage!r} is recorded under {self.home}",
                              hint=f"run: txpipe deploy --target aws --stage {self.stage}")
        return json.loads(path.read_text())

    @property
    def api_url(self) -> str:
        url = self._record().get("api_url")
        if not url:
            raise TxpipeError("the stack has no API URL recorded", hint="run: txpipe deploy --target aws")
        return url

    def api_headers(self) -> dict[str, str]:
        key_id = self._record().get("api_key_id")
        return {"x-api-key": self.aws.api_key_value(key_id)} if key_id else {}

    def deployed_settings(self) -> dict[str, Any]:
        return dict(self._record().get("settings", {}))

    def deploy(self, settings: PipelineSettings, step: Callable[[str], None] = lambda _: None, *,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        return self.deployer.deploy(settings, self.options, step=step, on_event=on_event).to_dict()

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        return self.deployer.destroy(on_event)

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = 900) -> Any:
        """Runs a function once and returns its answer, waiting at most `timeout` seconds (and never past
        the function's own timeout and a margin: AwsClient.invoke)."""
        self._record()  # nothing deployed: the same one line as every other command says
        result = self.aws.invoke(function_name(self.stage, function), payload,
                                 function_timeout=FUNCTIONS[function].timeout_seconds, wait=timeout)
        if isinstance(result, dict) and "error" in result:
            raise TxpipeError(result["error"])
        return result

    def logs(self, function: str | None, since: datetime, follow: bool = False, *,
             caught_up: Callable[[], None] = lambda: None) -> Iterator[LogRecord]:
        """The functions' CloudWatch Logs since `since` (one function's, or all five), in time order; `follow`:
        then each new event, polling (txpipe_cli/aws/logs.py). Reads what is there, deployed or not."""
        from txpipe_cli.aws import logs

        return logs.read(self.aws, self.stage, [function] if function else list(FUNCTIONS), since, follow=follow,
                         caught_up=caught_up)

    def status(self) -> dict[str, Any]:
        self._record()
        stack = self.aws.stack(self.deployer.stack)
        record = self._record() if self.deployer.record_path.exists() else {}
        stack_status = stack["StackStatus"] if stack else "absent"
        parts: dict[str, dict[str, Any]] = {"stack": {"alive": stack_status in HEALTHY, "status": stack_status}}
        result: dict[str, Any] = {"target": "aws", "stage": self.stage, "parts": parts,
                                  "settings": record.get("settings", {})}
        for name, url in (("queue", record.get("queue_url")), ("dead_letters", record.get("dlq_url"))):
            if url:
                visible, in_flight = self.aws.queue_depth(url)
                parts[name] = {"alive": True, "visible": visible, "in_flight": in_flight}
        if parts["stack"]["alive"]:
            try:
                result["pipeline"] = OpsClient(self).status().to_dict()
            except TxpipeError as exc:
                result["pipeline_error"] = exc.reason
            # The sync errors alarm is how AWS says the last scheduled syncs failed.
            result["alarms"] = self.aws.alarms_firing([f"txpipe-{self.stage}-{name}" for name in ALARMS])
        return result

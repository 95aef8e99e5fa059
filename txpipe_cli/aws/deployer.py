"""Deploying the AWS target: one CloudFormation stack, planned and applied through change sets.

The stages, in order (planning only reads; applying only writes):

1. package - build the content-hashed Lambda artifact from lambdas/ (txpipe_cli.aws.package);
2. plan    - create a change set from infra/template.yaml and the parameters (CREATE for a new
             stack, UPDATE otherwise) and describe it: action, resource, type, replacement.
             CloudFormation refuses an empty change set: that means nothing to change.
   --plan stops here: the change set (and, for a new stack, its REVIEW_IN_PROGRESS shell) is
   deleted and nothing is uploaded, so a plan creates nothing.
3. upload  - ensure the artifacts bucket (encrypted, public access blocked) and upload the
             artifact under its hash unless it is already there;
4. apply   - execute the change set and follow the stack events; on failure, raise with the
             failed events' reasons;
5. migrate - run the schema migrations through the ops function (inside the VPC);
6. record  - write the outputs and resolved names to $TXPIPE_HOME/aws-<stage>.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from txpipe_cli.aws.client import AwsClient, ChangeSet
from txpipe_cli.config import PipelineSettings, parse_clock
from txpipe_cli.errors import TxpipeError

FUNCTIONS = ("ingest", "store", "sync", "refresh", "ops")
FAILED_STATES = ("ROLLBACK", "FAILED")
# A stack whose creation failed cannot be updated: CloudFormation requires deleting it first.
UNUPDATABLE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED")


def stack_name(stage: str) -> str:
    return f"txpipe-{stage}"


def function_name(stage: str, function: str) -> str:
    return f"txpipe-{stage}-{function}"


def template_parameters(stage: str, settings: PipelineSettings, bucket: str, key: str,
                        extra: dict[str, str]) -> dict[str, str]:
    """The template's parameters from txpipe's settings; `extra` (--param K=V) adds or overrides."""
    minutes = settings.sync_every_seconds / 60
    if minutes != int(minutes) or minutes < 1:
        raise TxpipeError(f"AWS schedules run in whole minutes; --sync-every {settings.sync_every_seconds:g}s is not",
                          hint="use e.g. --sync-every 5m")
    hour, minute = parse_clock(settings.refresh_at)
    return {
        "Stage": stage,
        "CodeBucket": bucket,
        "CodeKey": key,
        "SyncScheduleMinutes": str(int(minutes)),
        "SlaSeconds": str(int(settings.sla_seconds)),
        # Warn while there is still a third of the SLA left to catch up.
        "SlaAtRiskSeconds": str(max(30, int(settings.sla_seconds * 2 / 3))),
        "RefreshCron": f"cron({minute} {hour} * * ? *)",
        "RefreshTimezone": settings.timezone or "UTC",
        **extra,
    }


@dataclass
class DeployResult:
    stack: str
    action: str  # planned | created | updated | unchanged
    changes: list[dict[str, str]] = field(default_factory=list)
    artifact: str = ""
    uploaded: bool = False
    migrations: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"target": "aws", "changed": self.action in ("created", "updated"), **asdict(self)}


class Deployer:
    def __init__(self, aws: AwsClient, home: Path, stage: str,
                 build: Callable[[Path], dict[str, Any]] | None = None,
                 template: Callable[[], str] | None = None) -> None:
        self.aws, self.home, self.stage = aws, home, stage
        self._build = build or _default_build
        self._template = template or _default_template
        self.stack = stack_name(stage)

    @property
    def record_path(self) -> Path:
        return self.home / f"aws-{self.stage}.json"

    def bucket(self) -> str:
        return f"txpipe-artifacts-{self.aws.account_id()}-{self.aws.region}"

    def deploy(self, settings: PipelineSettings, *, plan: bool = False, extra: dict[str, str] | None = None,
               step: Callable[[str], None] = lambda _: None,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> DeployResult:
        step("package")
        artifact = self._build(self.home / "build")
        zip_path = Path(artifact["functions"]["ingest"]["zip"])
        bucket, key = self.bucket(), f"lambdas/{zip_path.name}"
        parameters = template_parameters(self.stage, settings, bucket, key, extra or {})

        step("plan")
        existing = self.aws.stack(self.stack)
        if existing and existing["StackStatus"] == "REVIEW_IN_PROGRESS":
            self.aws.delete_stack(self.stack)  # an abandoned plan's empty shell
            existing = None
        if existing and existing["StackStatus"] in UNUPDATABLE:
            raise TxpipeError(f"stack {self.stack} is {existing['StackStatus']}",
                              hint="run: txpipe destroy --target aws, then deploy again")
        change_type = "UPDATE" if existing else "CREATE"
        change_set = self.aws.create_change_set(self.stack, f"txpipe-{int(time.time())}", self._template(),
                                                parameters, change_type)
        result = DeployResult(self.stack, "planned", [c.as_dict() for c in change_set.changes], key)
        if plan:
            self._discard(change_set, change_type)
            return result
        if not change_set.ready:
            self.aws.delete_change_set(self.stack, change_set.name)
            result.action = "unchanged"
            result.record = self._record(settings, parameters)
            return result

        step("upload")
        self.aws.ensure_bucket(bucket)
        if not self.aws.object_exists(bucket, key):
            self.aws.upload(zip_path, bucket, key)
            result.uploaded = True

        step("apply")
        since = datetime.now(UTC).replace(microsecond=0)
        self.aws.execute_change_set(self.stack, change_set.name)
        status, failed = self.aws.wait_for_stack(self.stack, since, on_event)
        if any(marker in status for marker in FAILED_STATES):
            raise TxpipeError(f"stack {self.stack} ended {status}: {_reasons(failed)}",
                              hint="fix the cause, then deploy again (a failed create needs destroy first)")
        result.action = "created" if change_type == "CREATE" else "updated"

        step("migrate")
        result.migrations = self.aws.invoke(function_name(self.stage, "ops"), {"action": "migrate"}) or {}
        result.record = self._record(settings, parameters)
        return result

    def _discard(self, change_set: ChangeSet, change_type: str) -> None:
        if change_type == "CREATE":
            self.aws.delete_stack(self.stack)  # deletes the REVIEW_IN_PROGRESS shell and its change set
        else:
            self.aws.delete_change_set(self.stack, change_set.name)

    def _record(self, settings: PipelineSettings, parameters: dict[str, str]) -> dict[str, Any]:
        """What later commands need, resolved once: outputs, else names derived from the template."""
        outputs = self.aws.stack_outputs(self.stack)
        resources = self.aws.stack_resources(self.stack)
        region = self.aws.region
        api_id = resources.get("OrdersApi", "")
        record = {
            "stack": self.stack,
            "stage": self.stage,
            "region": region,
            "bucket": parameters["CodeBucket"],
            "code_key": parameters["CodeKey"],
            "settings": asdict(settings),
            "parameters": {k: v for k, v in parameters.items() if k not in ("CodeBucket", "CodeKey")},
            "outputs": outputs,
            "functions": {f: outputs.get(f"{f.capitalize()}FunctionName") or function_name(self.stage, f)
                          for f in FUNCTIONS},
            "api_url": outputs.get("ApiUrl") or (f"https://{api_id}.execute-api.{region}.amazonaws.com/{self.stage}"
                                                 if api_id else ""),
            "api_key_id": outputs.get("ApiKeyId") or resources.get("OrdersApiKey") or "",
            "queue_url": outputs.get("OrdersQueueUrl") or self.aws.queue_url(f"txpipe-{self.stage}-orders") or "",
            "dlq_url": outputs.get("DeadLetterQueueUrl") or self.aws.queue_url(f"txpipe-{self.stage}-orders-dlq") or "",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        self.record_path.write_text(json.dumps(record, indent=2))
        return record

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        """Deletes the stack, then the artifacts bucket, then the local record."""
        described = self.aws.stack(self.stack)
        existed = described is not None
        if described is not None:
            since = datetime.now(UTC).replace(microsecond=0)
            self.aws.delete_stack(self.stack)
            # Followed by id: a deleted stack can no longer be described by name.
            status, failed = self.aws.wait_for_stack(described["StackId"], since, on_event)
            if status != "DELETE_COMPLETE":
                raise TxpipeError(f"stack {self.stack} ended {status}: {_reasons(failed)}",
                                  hint="retry txpipe destroy; resources kept by policy are listed above")
        bucket = self.bucket()
        removed = self.aws.delete_bucket(bucket)
        self.record_path.unlink(missing_ok=True)
        return {"target": "aws", "destroyed": existed, "stack": self.stack, "bucket": bucket,
                "artifacts_removed": removed, "reason": "" if existed else f"no stack {self.stack}"}


def _reasons(failed: list[dict[str, Any]]) -> str:
    """The failed events' reasons, first five, one line."""
    reasons = "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '?')}" for e in failed[:5])
    return reasons or "no reason given"


def _default_build(out_dir: Path) -> dict[str, Any]:
    from txpipe_cli.aws.package import build

    return build(out_dir)


def _default_template() -> str:
    """The template as CloudFormation accepts it: short tags resolved into their Fn:: forms, compact JSON."""
    from cfnlint.decode.cfn_yaml import loads

    from infra import template_body

    return json.dumps(loads(template_body()), separators=(",", ":"))

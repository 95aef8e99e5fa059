"""Applying an AWS deploy plan: the only step of a deploy that writes.

`AwsApplier` puts what the plan found missing in the artifacts bucket, executes the change set the
planner made, follows the stack events, runs the migrations and records what later commands need.
`DisplayApplier` (`txpipe deploy --plan`) reports what that would be and does none of it. The steps
are told in deployer.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.planner import Plan, function_name
from txpipe_cli.errors import TxpipeError

FAILED_STATES = ("ROLLBACK", "FAILED")
# infra/template.yaml: the warehouse's monthly compute ceiling (a parameter), and the workgroup it guards (an
# output of the serverless warehouse only).
RPU_HOURS = "RedshiftMonthlyRpuHours"
WORKGROUP_ARN = "WarehouseWorkgroupArn"


def record_path(home: Path, stage: str) -> Path:
    return home / f"aws-{stage}.json"


@dataclass
class DeployResult:
    stack: str
    action: str  # planned | created | updated | unchanged
    changes: list[dict[str, str]] = field(default_factory=list)
    artifact: str = ""  # the Lambda artifact's key in the bucket
    template: str = ""  # the compiled template's key in the bucket
    template_source: str = ""  # how CloudFormation read it: TemplateURL (a deploy) or TemplateBody
    uploads: list[str] = field(default_factory=list)  # keys put in the bucket (planned: that a deploy would put)
    uploaded: bool = False
    migrations: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)  # the monthly cost (pricing.Estimate.to_dict)
    estimate_error: str = ""  # why there is no estimate (a size the price table lacks)
    usage_limit: dict[str, Any] = field(default_factory=dict)  # action: created | updated | unchanged | skipped

    def to_dict(self) -> dict[str, Any]:
        return {"target": "aws", "changed": self.action in ("created", "updated"), **asdict(self)}


class Applier(Protocol):
    executes: bool  # False: nothing is applied, so the planner deletes the change set afterwards

    def upload(self, plan: Plan) -> Plan:
        """Puts the missing objects in the bucket, before the change set that reads the template there."""
        ...

    def apply(self, plan: Plan) -> DeployResult:
        """Executes the planned change set (when it holds changes), then migrates and records."""
        ...


def _result(plan: Plan, action: str) -> DeployResult:
    changes = plan.change_set.changes if plan.change_set else []
    return DeployResult(plan.stack, action, [c.as_dict() for c in changes], plan.artifact.key, plan.template.key,
                        plan.template_source, list(plan.uploaded), bool(plan.uploaded),
                        estimate=plan.estimate.to_dict() if plan.estimate else {},
                        estimate_error=plan.estimate_error)


class DisplayApplier:
    """`--plan`: the change set and the uploads a deploy would make; writes nothing."""

    executes = False

    def upload(self, plan: Plan) -> Plan:
        return plan

    def apply(self, plan: Plan) -> DeployResult:
        result = _result(plan, "planned")
        result.uploads = [upload.key for upload in plan.uploads]
        return result


class AwsApplier:
    executes = True

    def __init__(self, aws: AwsClient, home: Path, stage: str,
                 step: Callable[[str], None] = lambda _: None,
                 on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> None:
        self.aws, self.home, self.stage_name = aws, home, stage
        self._step, self._on_event = step, on_event

    def upload(self, plan: Plan) -> Plan:
        if not plan.bucket_exists:
            self.aws.ensure_bucket(plan.bucket)  # encrypted, public access blocked
        for upload in plan.uploads:
            if upload.path is not None:
                self.aws.upload(upload.path, plan.bucket, upload.key)
            else:
                self.aws.put_object(plan.bucket, upload.key, upload.body, upload.content_type)
        return replace(plan, bucket_exists=True, artifact=replace(plan.artifact, present=True),
                       template=replace(plan.template, present=True),
                       uploaded=plan.uploaded + tuple(upload.key for upload in plan.uploads))

    def apply(self, plan: Plan) -> DeployResult:
        if plan.change_set is None:
            raise TxpipeError(f"no change set was planned for stack {plan.stack}")
        if not plan.change_set.ready:  # CloudFormation found nothing to change
            result = _result(plan, "unchanged")
            result.record = self._record(plan)
            result.usage_limit = self._usage_limit(plan, result.record["outputs"])
            return result
        self._step("apply")
        since = datetime.now(UTC).replace(microsecond=0)
        self.aws.execute_change_set(plan.stack, plan.change_set.name)
        status, failed = self.aws.wait_for_stack(plan.stack, since, self._on_event)
        if any(marker in status for marker in FAILED_STATES):
            raise TxpipeError(f"stack {plan.stack} ended {status}: {reasons(failed)}",
                              hint="fix the cause, then deploy again (a failed create needs destroy first)")
        result = _result(plan, "created" if plan.change_type == "CREATE" else "updated")
        self._step("migrate")
        result.migrations = self.aws.invoke(function_name(self.stage_name, "ops"), {"action": "migrate"},
                                            function_timeout=FUNCTIONS["ops"].timeout_seconds) or {}
        result.record = self._record(plan)  # first: should the limit fail, later commands still find the stack
        result.usage_limit = self._usage_limit(plan, result.record["outputs"])
        return result

    def _usage_limit(self, plan: Plan, outputs: dict[str, str]) -> dict[str, Any]:
        """The guard on the warehouse bill: a monthly limit on the workgroup's RPU-hours that deactivates it
        once reached. CloudFormation has no resource type for it, so every deploy ensures it, the unchanged
        ones too: a new RedshiftMonthlyRpuHours alone changes no resource, so the stack stays as it was."""
        amount = _parameter(plan, RPU_HOURS)
        limit = {"usage_type": "serverless-compute", "period": "monthly",
                 "amount": None if amount is None else int(amount), "breach_action": "deactivate"}
        workgroup = outputs.get(WORKGROUP_ARN, "")
        if not (workgroup.startswith("arn:") and ":redshift-serverless:" in workgroup):
            # The provisioned warehouse has none; nor has an emulator without Redshift Serverless (moto), which
            # at most gives a placeholder in its place.
            return {"action": "skipped", "reason": "the stack has no Redshift Serverless workgroup", **limit}
        if limit["amount"] is None:
            return {"action": "skipped", "reason": f"the template has no {RPU_HOURS} parameter", **limit}
        self._step("usage limit")
        action = self.aws.ensure_usage_limit(workgroup, limit["amount"], usage_type=limit["usage_type"],
                                             period=limit["period"], breach_action=limit["breach_action"])
        return {"action": action, "workgroup": workgroup, **limit}

    def _record(self, plan: Plan) -> dict[str, Any]:
        """What later commands need, resolved once: outputs, else names derived from the template."""
        outputs = self.aws.stack_outputs(plan.stack)
        resources = self.aws.stack_resources(plan.stack)
        region = self.aws.region
        api_id = resources.get("OrdersApi", "")
        stage = self.stage_name
        record = {
            "stack": plan.stack,
            "stage": stage,
            "region": region,
            "bucket": plan.bucket,
            "code_key": plan.artifact.key,
            "template_key": plan.template.key,
            "settings": asdict(plan.settings),
            "parameters": {k: v for k, v in plan.parameters.items() if k not in ("CodeBucket", "CodeKey")},
            "outputs": outputs,
            "functions": {f: outputs.get(f"{f.capitalize()}FunctionName") or function_name(stage, f)
                          for f in FUNCTIONS},
            "api_url": outputs.get("ApiUrl") or (f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"
                                                 if api_id else ""),
            "api_key_id": outputs.get("ApiKeyId") or resources.get("OrdersApiKey") or "",
            "queue_url": outputs.get("OrdersQueueUrl") or self.aws.queue_url(f"txpipe-{stage}-orders") or "",
            "dlq_url": outputs.get("DeadLetterQueueUrl") or self.aws.queue_url(f"txpipe-{stage}-orders-dlq") or "",
        }
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The operator's alone, as everything under the state directory (issue 15).
        fd = os.open(record_path(self.home, stage), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)  # a record an earlier release wrote 0644
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2)
        return record


def _parameter(plan: Plan, name: str) -> str | None:
    """A template parameter's value in this deploy: as given (--param), else the template's default."""
    if name in plan.parameters:
        return plan.parameters[name]
    try:
        default = json.loads(plan.template.body).get("Parameters", {}).get(name, {}).get("Default")
    except ValueError:
        return None
    return None if default is None else str(default)


def reasons(failed: list[dict[str, Any]]) -> str:
    """The failed events' reasons, first five, one line."""
    text = "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '?')}" for e in failed[:5])
    return text or "no reason given"

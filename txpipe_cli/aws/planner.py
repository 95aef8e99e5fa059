"""Planning an AWS deploy: read what is there and decide what must change, writing nothing.

The planner makes describe and head calls only, plus CloudFormation's own way of planning: creating,
describing and deleting a change set (and the REVIEW_IN_PROGRESS shell a change set of a new stack
lives in). It never creates a bucket, uploads an object or executes a change set: that is the
applier's work (applier.py). The stages that use both are told in deployer.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from txpipe_cli.aws import network
from txpipe_cli.aws.change_sets import ChangeSet, TemplateSource
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.package import TEMPLATE_BODY_LIMIT, CompiledTemplate
from txpipe_cli.aws.pricing import Estimate, estimate
from txpipe_cli.config import DEFAULT_ORDERS_PER_MONTH, PipelineSettings, parse_clock
from txpipe_cli.errors import TxpipeError

# A stack whose creation failed cannot be updated: CloudFormation requires deleting it first.
UNUPDATABLE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED")
# What a change set of a new stack leaves when it is neither executed nor deleted (an interrupted plan).
SHELL = "REVIEW_IN_PROGRESS"


def _priced(template: dict[str, Any], parameters: dict[str, str], orders_per_month: int) -> dict[str, Any]:
    """The plan's estimate, or why there is none: a size missing from the price table (say an instance class
    the operator picked) is reported with the plan, and never stops a deploy."""
    try:
        return {"estimate": estimate(template, parameters, orders_per_month)}
    except TxpipeError as exc:
        return {"estimate_error": exc.line()}


def stack_name(stage: str) -> str:
    return f"txpipe-{stage}"


def function_name(stage: str, function: str) -> str:
    return f"txpipe-{stage}-{function}"


def bucket_name(account: str, region: str) -> str:
    return f"txpipe-artifacts-{account}-{region}"


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
        # The at-risk alarm's period: two intervals, so each holds a run's figure (infra/template.yaml).
        "SlaAlarmPeriodSeconds": str(2 * int(minutes) * 60),
        "RefreshCron": f"cron({minute} {hour} * * ? *)",
        "RefreshTimezone": settings.timezone or "UTC",
        **extra,
    }


@dataclass(frozen=True)
class Upload:
    """An object the deploy needs in the artifacts bucket, under a content-hashed key (so present means
    identical): the Lambda artifact (a file) or the compiled template (bytes)."""

    key: str
    present: bool
    path: Path | None = None
    body: bytes = b""
    content_type: str = "application/zip"


@dataclass(frozen=True)
class Plan:
    """What a deploy will do, as read from AWS; the change set once CloudFormation has planned it."""

    stack: str
    change_type: str  # CREATE (no stack yet) or UPDATE
    bucket: str
    bucket_exists: bool
    artifact: Upload
    template: Upload
    parameters: dict[str, str]
    settings: PipelineSettings
    shell: bool = False  # an interrupted plan's REVIEW_IN_PROGRESS shell, deleted before planning anew
    uploaded: tuple[str, ...] = ()  # keys the applier has put in the bucket, in this deploy
    change_set: ChangeSet | None = None
    template_source: str = ""  # TemplateURL or TemplateBody: how the change set read the template
    estimate: Estimate | None = None  # the stack's monthly cost under these parameters (pricing.py)
    estimate_error: str = ""  # why there is none (a size the price table lacks): said, never a reason to stop

    @property
    def uploads(self) -> list[Upload]:
        """The objects missing from the bucket."""
        return [upload for upload in (self.artifact, self.template) if not upload.present]


class Planner:
    def __init__(self, aws: AwsClient, stage: str, clock: Callable[[], float] = time.time) -> None:
        self.aws, self.stage, self._clock = aws, stage, clock
        self.stack = stack_name(stage)

    def bucket(self) -> str:
        return bucket_name(self.aws.account_id(), self.aws.region)

    def plan(self, settings: PipelineSettings, parameters: dict[str, str], artifact: Path,
             template: CompiledTemplate, orders_per_month: int = DEFAULT_ORDERS_PER_MONTH) -> Plan:
        """Reads the stack and the bucket: CREATE or UPDATE, and which objects are missing; prices the
        template under the parameters (no AWS call: the dated price table)."""
        warehouse = parameters.get("WarehouseMode", "serverless")
        if parameters.get("ExistingVpcId"):  # before any AWS call: too few subnets is known already
            network.check_subnet_ids(parameters.get("ExistingSubnetIds", "").split(","), warehouse)
        existing = self.aws.stack(self.stack)
        status = existing["StackStatus"] if existing else None
        if status in UNUPDATABLE:
            raise TxpipeError(f"stack {self.stack} is {status}",
                              hint="run: txpipe destroy --target aws, then deploy again")
        bucket = self.bucket()
        bucket_exists = self.aws.bucket_exists(bucket)
        code_key = f"lambdas/{artifact.name}"

        def present(key: str) -> bool:
            return bucket_exists and self.aws.object_exists(bucket, key)

        resolved = template_parameters(self.stage, settings, bucket, code_key,
                                       {**self.network_parameters(parameters, warehouse), **parameters})
        return Plan(
            stack=self.stack,
            change_type="UPDATE" if status and status != SHELL else "CREATE",
            bucket=bucket,
            bucket_exists=bucket_exists,
            artifact=Upload(code_key, present(code_key), path=artifact),
            template=Upload(template.key, present(template.key), body=template.body, content_type="application/json"),
            parameters=resolved,
            settings=settings,
            shell=status == SHELL,
            **_priced(json.loads(template.body), resolved, orders_per_month),
        )

    def network_parameters(self, parameters: dict[str, str], warehouse: str) -> dict[str, str]:
        """The region's S3 prefix list (the security groups' HTTPS destination), read from EC2; with an existing
        VPC, first that its subnets and routes give every function a way to what it calls (network.py)."""
        ec2 = self.aws.client("ec2")
        vpc = parameters.get("ExistingVpcId")
        if vpc:
            problems = network.existing_vpc_problems(ec2, self.aws.region, vpc,
                                                     parameters.get("ExistingSubnetIds", "").split(","), warehouse)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise TxpipeError(f"the existing VPC {vpc} cannot run the stack: {problems[0]}{more}",
                                  hint="txpipe doctor --target aws with the same --param lists every problem")
        if "S3PrefixListId" in parameters:
            return {}
        return {"S3PrefixListId": network.s3_prefix_list(ec2, self.aws.region)}

    def change_set(self, plan: Plan) -> Plan:
        """CloudFormation plans the change: a change set, created and described to its list of changes."""
        source = self._source(plan)
        if plan.shell:
            self.aws.delete_stack(plan.stack)  # holds only the interrupted plan's change set, no resource
        # Named by the millisecond: a name is unique per stack, and plans may follow each other quickly.
        change_set = self.aws.create_change_set(plan.stack, f"txpipe-{int(self._clock() * 1000)}", source,
                                                plan.parameters, plan.change_type)
        return replace(plan, change_set=change_set, template_source=source.kind, shell=False)

    def _source(self, plan: Plan) -> TemplateSource:
        """From the bucket whenever it is there (a deploy has just put it there; a plan finds it there after
        a first deploy); else, for a plan, in the request if it fits CloudFormation's limit for that."""
        if plan.template.present:
            return TemplateSource(url=self.aws.s3_url(plan.bucket, plan.template.key))
        size = len(plan.template.body)
        if size <= TEMPLATE_BODY_LIMIT:
            return TemplateSource(body=plan.template.body.decode())
        raise TxpipeError(f"the template is {size:,} bytes, over CloudFormation's {TEMPLATE_BODY_LIMIT:,}-byte "
                          f"limit for one sent in the request, and not yet in the artifacts bucket {plan.bucket}",
                          hint="deploy once (txpipe deploy --target aws); later plans read it from the bucket")

    def discard(self, plan: Plan) -> None:
        """Deletes a change set that will not be executed, so that planning leaves nothing behind."""
        if plan.change_set is None:
            return
        if plan.change_type == "CREATE":
            self.aws.delete_stack(plan.stack)  # the REVIEW_IN_PROGRESS shell, and its change set with it
        else:
            self.aws.delete_change_set(plan.stack, plan.change_set.name)

"""Deploying the AWS target: one CloudFormation stack, planned and applied through change sets.

The steps, in order. The planner (planner.py) only reads AWS, plus creating, describing and deleting
change sets, which is how CloudFormation plans; the applier (applier.py) is the only one that writes.

1. build      - local: the content-hashed Lambda artifact from lambdas/ (package.build) and the template
                resolved to compact JSON (package.compile_template), also named after its hash;
2. plan       - Planner.plan reads the stack (CREATE for a new one, UPDATE otherwise; one that failed to
                create must be destroyed first) and whether the artifacts bucket and both objects are
                there, turns the settings into template parameters (--param K=V adds or overrides) and
                prices the template under them (pricing.py: the monthly estimate, no AWS call);
3. upload     - Applier.upload ensures the bucket (encrypted, public access blocked) and uploads what is
                missing, the template included: CloudFormation reads it from there (TemplateURL, up to
                1 MB) rather than from the request (TemplateBody, capped at 51,200 bytes);
4. change set - Planner.change_set: CloudFormation plans the change from TemplateURL, described as
                action, resource, type, replacement. An empty change set means nothing to change;
5. apply      - a change set that would replace or remove a data store (the RDS instance, the Serverless
                namespace, a cluster) is deleted and refused; else the estimate goes to on_event first, then
                Applier.apply executes the change set and follows the stack events; on failure it raises
                with the failed events' reasons;
6. migrate    - the schema migrations, through the ops function (inside the VPC);
7. record     - the outputs and resolved names, to $TXPIPE_HOME/aws-<stage>.json.

`--plan` runs the same steps with the DisplayApplier, which writes nothing: at step 3 nothing is
uploaded, so the change set reads the template from the bucket if an earlier deploy put it there, else
from the request when it fits (else the plan stops, saying to deploy once); steps 5-7 become a report,
and the change set is deleted (for a new stack with its REVIEW_IN_PROGRESS shell). A plan leaves no
bucket, object or stack behind. A change set found empty is deleted too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from txpipe_cli.aws.applier import Applier, AwsApplier, DeployResult, DisplayApplier, reasons, record_path
from txpipe_cli.aws.change_sets import Change
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.package import CompiledTemplate
from txpipe_cli.aws.planner import Planner, function_name, stack_name, template_parameters
from txpipe_cli.config import DEFAULT_ORDERS_PER_MONTH, PipelineSettings
from txpipe_cli.errors import TxpipeError

# Imported from here by other modules (doctor, the AWS target, tests).
__all__ = ["DeployOptions", "DeployResult", "Deployer", "function_name", "stack_name", "template_parameters"]

STAGING_BUCKET = "WarehouseStagingBucket"  # infra/template.yaml: emptied before the stack is deleted
# What holds the orders: a deploy never replaces or removes one (destroy is the way to delete them).
DATA_STORES = frozenset({"AWS::RDS::DBInstance", "AWS::RedshiftServerless::Namespace", "AWS::Redshift::Cluster"})


@dataclass(frozen=True)
class DeployOptions:
    """What an AWS deploy takes beyond the pipeline settings: `--plan`, `--param KEY=VALUE` and the orders a
    month its cost estimate is for (`--orders-per-month`)."""

    plan_only: bool = False
    parameters: Mapping[str, str] = field(default_factory=dict)
    orders_per_month: int = DEFAULT_ORDERS_PER_MONTH


class Deployer:
    def __init__(self, aws: AwsClient, home: Path, stage: str,
                 build: Callable[[Path], dict[str, Any]] | None = None,
                 template: Callable[[], CompiledTemplate] | None = None) -> None:
        self.aws, self.home, self.stage = aws, home, stage
        self._build = build or _default_build
        self._template = template or _default_template
        self.planner = Planner(aws, stage)
        self.stack = stack_name(stage)

    @property
    def record_path(self) -> Path:
        return record_path(self.home, self.stage)

    def bucket(self) -> str:
        return self.planner.bucket()

    def deploy(self, settings: PipelineSettings, options: DeployOptions | None = None, *,
               step: Callable[[str], None] = lambda _: None,
               on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> DeployResult:
        options = options or DeployOptions()
        self.aws.account_id()  # region, credentials and identity first: a missing one costs no packaging
        applier: Applier = (DisplayApplier() if options.plan_only
                            else AwsApplier(self.aws, self.home, self.stage, step=step, on_event=on_event))
        step("package")
        template = self._template()  # first: a template past CloudFormation's limit fails fast
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # not build/'s parents' default 0755
        artifact = Path(self._build(self.home / "build")["functions"]["ingest"]["zip"])
        step("plan")
        plan = self.planner.plan(settings, dict(options.parameters), artifact, template, options.orders_per_month)
        step("upload")
        plan = applier.upload(plan)
        step("change set")
        plan = self.planner.change_set(plan)
        executes = applier.executes and plan.change_set is not None and plan.change_set.ready
        lost = data_store_replacements(plan.change_set.changes) if executes and plan.change_set else []
        if lost:
            self.planner.discard(plan)
            raise TxpipeError(f"the change would replace {', '.join(lost)}: the data stays only in a final snapshot, "
                              "and the new one's fixed name is still taken, so CloudFormation would fail and roll "
                              "back; nothing was changed",
                              hint="undo the setting that forces it (deploy --plan shows each replacement), or "
                                   "destroy and deploy again")
        if executes and plan.estimate is not None:
            on_event({"estimate": plan.estimate.to_dict()})  # what it will cost, before it is created
        try:
            return applier.apply(plan)
        finally:
            if not executes:  # a plan, or nothing to change: the change set goes, so nothing is left behind
                self.planner.discard(plan)

    def destroy(self, on_event: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
        """Deletes the stack, then the artifacts bucket, then the local record."""
        described = self.aws.stack(self.stack)
        existed = described is not None
        if described is not None:
            # CloudFormation deletes only an empty bucket: a crashed sync may have left a batch file.
            staging = self.aws.stack_resources(self.stack).get(STAGING_BUCKET)
            if staging:
                self.aws.empty_bucket(staging)
            since = datetime.now(UTC).replace(microsecond=0)
            self.aws.delete_stack(self.stack)
            # Followed by id: a deleted stack can no longer be described by name.
            status, failed = self.aws.wait_for_stack(described["StackId"], since, on_event)
            if status != "DELETE_COMPLETE":
                raise TxpipeError(f"stack {self.stack} ended {status}: {reasons(failed)}",
                                  hint="retry txpipe destroy; resources kept by policy are listed above")
        bucket = self.bucket()
        removed = self.aws.delete_bucket(bucket)
        self.record_path.unlink(missing_ok=True)
        return {"target": "aws", "destroyed": existed, "stack": self.stack, "bucket": bucket,
                "artifacts_removed": removed, "reason": "" if existed else f"no stack {self.stack}"}


def data_store_replacements(changes: list[Change]) -> list[str]:
    """The data stores a change set would delete or replace, as "LogicalId (Type)". Each has a fixed physical
    name (DBInstanceIdentifier, NamespaceName, ClusterIdentifier), which CloudFormation cannot create a second
    time beside the first, and its data would survive only in a final snapshot."""
    return [f"{c.logical_id} ({c.resource_type})" for c in changes if c.resource_type in DATA_STORES
            and (c.action == "Remove" or (c.action == "Modify" and c.replacement in ("True", "Conditional")))]


def _default_build(out_dir: Path) -> dict[str, Any]:
    from txpipe_cli.aws.package import build

    return build(out_dir)


def _default_template() -> CompiledTemplate:
    from txpipe_cli.aws.package import compile_template

    return compile_template()

"""The AWS deploy orchestration (txpipe_cli/aws/deployer.py) over a recording AwsClient stand-in.

The moto tests cover the real calls; these cover the order of the stages and the branches moto cannot
produce: a failed stack operation, an abandoned plan's shell, a stack that must be destroyed first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.client import Change, ChangeSet, TemplateSource
from txpipe_cli.aws.deployer import Deployer, DeployOptions, template_parameters
from txpipe_cli.aws.package import CompiledTemplate
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError

CODE_KEY = "lambdas/txpipe-lambdas-0123456789abcdef.zip"
TEMPLATE = CompiledTemplate(b'{"Resources":{}}', "fedcba9876543210" * 4)
# What only reads AWS, and what plans through CloudFormation (a change set, or a new stack's shell).
READS = {"account_id", "stack", "bucket_exists", "object_exists", "s3_url", "client", "describe_managed_prefix_lists"}
PLANNING = {"create_change_set", "delete_change_set", "delete_stack"}


class RecordingAws:
    """Answers like AWS would for one scripted scenario and records the calls made."""

    region = "eu-west-1"

    def __init__(self, stack_status: str | None = None, ready: bool = True, stored: set[str] | None = None,
                 final: tuple[str, list[dict[str, Any]]] = ("CREATE_COMPLETE", []),
                 changes: list[Change] | None = None) -> None:
        self.stack_status, self.ready, self.final = stack_status, ready, final
        self.changes = changes or [Change("Add", "OrdersQueue", "AWS::SQS::Queue", "-")]
        self.stored = stored  # keys in the artifacts bucket; None: no bucket
        self.calls: list[tuple[Any, ...]] = []

    def account_id(self) -> str:
        self.calls.append(("account_id",))
        return "123456789012"

    def stack(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("stack", name))
        return {"StackStatus": self.stack_status, "StackId": "id-1"} if self.stack_status else None

    def bucket_exists(self, bucket: str) -> bool:
        self.calls.append(("bucket_exists", bucket))
        return self.stored is not None

    def object_exists(self, bucket: str, key: str) -> bool:
        self.calls.append(("object_exists", bucket, key))
        return self.stored is not None and key in self.stored

    def client(self, service: str) -> Any:
        """EC2 for the planner's read of S3's prefix list: botocore's real client, answered by its Stubber."""
        assert service == "ec2", service
        ec2 = boto3.client("ec2", region_name=self.region, aws_access_key_id="x", aws_secret_access_key="x")
        stubber = Stubber(ec2)
        stubber.add_response("describe_managed_prefix_lists", {"PrefixLists": [
            {"PrefixListId": "pl-0123456789abcdef0", "PrefixListName": f"com.amazonaws.{self.region}.s3"}]})
        stubber.activate()
        self.calls.append(("client", service))
        self.calls.append(("describe_managed_prefix_lists",))
        return ec2

    def s3_url(self, bucket: str, key: str) -> str:
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"

    def create_change_set(self, stack: str, name: str, template: TemplateSource, parameters: dict[str, str],
                          change_type: str) -> ChangeSet:
        self.calls.append(("create_change_set", change_type, parameters["CodeKey"], template))
        changes = self.changes if self.ready else []
        return ChangeSet(name, self.ready, changes, "" if self.ready else "didn't contain changes")

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, *args))
            return {"ensure_bucket": True, "stack_outputs": {}, "stack_resources": {},
                    "queue_url": None, "invoke": {"applied": {"oltp": [1], "warehouse": [1]}},
                    "wait_for_stack": self.final, "delete_bucket": 1}.get(name)

        return record

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def source(self) -> TemplateSource:
        [call] = [c for c in self.calls if c[0] == "create_change_set"]
        return call[3]


def deployer(aws: RecordingAws, tmp_path: Path) -> Deployer:
    artifact = tmp_path / "txpipe-lambdas-0123456789abcdef.zip"
    artifact.write_bytes(b"zip")
    return Deployer(aws, tmp_path, "prod", build=lambda _: {"functions": {"ingest": {"zip": str(artifact)}}},
                    template=lambda: TEMPLATE)


PLAN = DeployOptions(plan_only=True)


def test_plan_of_a_new_stack_only_reads_and_deletes_its_shell(tmp_path: Path) -> None:
    """--plan on a new stack: a CREATE change set from the request, described, then the REVIEW shell is
    deleted; no bucket is made, nothing uploaded, executed or migrated."""
    aws = RecordingAws()
    result = deployer(aws, tmp_path).deploy(PipelineSettings(), PLAN)
    assert result.action == "planned" and result.changes[0]["resource"] == "OrdersQueue"
    assert result.template_source == "TemplateBody" and aws.source().body == TEMPLATE.body.decode()
    assert result.uploads == [CODE_KEY, TEMPLATE.key] and result.uploaded is False
    assert aws.calls[-1] == ("delete_stack", "txpipe-prod")
    assert set(aws.names()) <= READS | PLANNING


def test_plan_of_an_existing_stack_deletes_only_the_change_set(tmp_path: Path) -> None:
    """--plan on a live stack: an UPDATE change set, read from the bucket, deleted afterwards."""
    aws = RecordingAws(stack_status="UPDATE_COMPLETE", stored={CODE_KEY, TEMPLATE.key})
    result = deployer(aws, tmp_path).deploy(PipelineSettings(), PLAN)
    assert ("create_change_set", "UPDATE") == aws.calls[aws.names().index("create_change_set")][:2]
    assert aws.source().url.endswith(f".amazonaws.com/{TEMPLATE.key}") and result.uploads == []
    assert "delete_change_set" in aws.names() and "delete_stack" not in aws.names()
    assert set(aws.names()) <= READS | PLANNING


def test_deploy_uploads_the_template_before_the_change_set_reads_it(tmp_path: Path) -> None:
    """A first deploy: bucket, artifact and template first, then a change set by TemplateURL, then execute,
    then migrate through ops."""
    aws = RecordingAws()
    result = deployer(aws, tmp_path).deploy(PipelineSettings())
    assert result.action == "created" and result.uploaded and result.uploads == [CODE_KEY, TEMPLATE.key]
    names = aws.names()
    assert names.index("ensure_bucket") < names.index("upload") < names.index("create_change_set")
    assert names.index("put_object") < names.index("create_change_set") < names.index("execute_change_set")
    assert names.index("execute_change_set") < names.index("invoke")
    assert ("put_object", "txpipe-artifacts-123456789012-eu-west-1", TEMPLATE.key, TEMPLATE.body,
            "application/json") in aws.calls
    assert aws.source() == TemplateSource(
        url=f"https://txpipe-artifacts-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/{TEMPLATE.key}")
    assert result.template_source == "TemplateURL"
    assert ("invoke", "txpipe-prod-ops", {"action": "migrate"}) in aws.calls
    assert result.record["bucket"] == "txpipe-artifacts-123456789012-eu-west-1"
    assert (result.record["code_key"], result.record["template_key"]) == (CODE_KEY, TEMPLATE.key)
    assert list(result.record["functions"]) == list(FUNCTIONS)


def test_the_estimate_is_sent_before_the_change_set_is_executed(tmp_path: Path) -> None:
    """A deploy that will create something sends its monthly estimate to on_event before executing; the result
    carries it too. A plan carries it without the event (nothing is executed)."""
    aws = RecordingAws()
    result = deployer(aws, tmp_path).deploy(PipelineSettings(), on_event=lambda e: aws.calls.append(("event", e)))
    [(_, event)] = [call for call in aws.calls if call[0] == "event"]
    assert aws.calls.index(("event", event)) < aws.names().index("execute_change_set")
    assert event["estimate"] == result.estimate and result.estimate["orders_per_month"] == 1_000_000
    assert result.estimate["total_usd"] == 0.0  # this stand-in template holds no resource
    planned_aws = RecordingAws()
    planned = deployer(planned_aws, tmp_path).deploy(PipelineSettings(), DeployOptions(plan_only=True,
                                                                                      orders_per_month=42),
                                                     on_event=lambda e: planned_aws.calls.append(("event", e)))
    assert planned.estimate["orders_per_month"] == 42 and "event" not in planned_aws.names()


def test_no_changes_means_no_upload_no_execute(tmp_path: Path) -> None:
    """An empty change set, everything already in the bucket: nothing uploaded or executed, the change set
    deleted, and the result says unchanged."""
    aws = RecordingAws(stack_status="CREATE_COMPLETE", ready=False, stored={CODE_KEY, TEMPLATE.key})
    result = deployer(aws, tmp_path).deploy(PipelineSettings())
    assert result.action == "unchanged" and result.uploads == []
    assert not {"ensure_bucket", "upload", "put_object", "execute_change_set", "invoke"} & set(aws.names())
    assert "delete_change_set" in aws.names()
    assert (tmp_path / "aws-prod.json").exists()


def test_only_the_missing_object_is_uploaded(tmp_path: Path) -> None:
    """A change to the template alone: the bucket and the artifact are there, only the template is put."""
    aws = RecordingAws(stack_status="UPDATE_COMPLETE", stored={CODE_KEY})
    result = deployer(aws, tmp_path).deploy(PipelineSettings())
    assert result.action == "updated" and result.uploads == [TEMPLATE.key]
    assert [c[0] for c in aws.calls if c[0] in ("ensure_bucket", "upload", "put_object")] == ["put_object"]


def test_a_failed_stack_operation_reports_the_failed_events(tmp_path: Path) -> None:
    """A rollback ends the deploy with each failed resource's reason, and no migration runs."""
    failed = [{"LogicalResourceId": "OltpDatabase", "ResourceStatus": "CREATE_FAILED",
               "ResourceStatusReason": "DB instance class not supported", "Timestamp": datetime.now(UTC)}]
    aws = RecordingAws(final=("ROLLBACK_COMPLETE", failed))
    with pytest.raises(TxpipeError, match="OltpDatabase: DB instance class not supported") as info:
        deployer(aws, tmp_path).deploy(PipelineSettings())
    assert "ROLLBACK_COMPLETE" in info.value.reason
    assert "invoke" not in aws.names()


def test_a_stack_that_failed_to_create_must_be_destroyed_first(tmp_path: Path) -> None:
    """ROLLBACK_COMPLETE cannot be updated: deploy says to destroy it, before uploading or planning anything."""
    aws = RecordingAws(stack_status="ROLLBACK_COMPLETE")
    with pytest.raises(TxpipeError, match="ROLLBACK_COMPLETE") as info:
        deployer(aws, tmp_path).deploy(PipelineSettings())
    assert "destroy" in (info.value.hint or "")
    assert not {"create_change_set", "ensure_bucket", "upload", "put_object"} & set(aws.names())


def test_an_interrupted_plans_shell_is_replaced(tmp_path: Path) -> None:
    """A REVIEW_IN_PROGRESS stack (a plan cut short) holds no resource: it is deleted and planned as new."""
    aws = RecordingAws(stack_status="REVIEW_IN_PROGRESS")
    deployer(aws, tmp_path).deploy(PipelineSettings(), PLAN)
    names = aws.names()
    assert names.index("delete_stack") < names.index("create_change_set")
    assert aws.calls[names.index("create_change_set")][1] == "CREATE"


def test_destroy_deletes_stack_then_bucket_then_record(tmp_path: Path) -> None:
    """destroy follows the deletion by stack id, then empties the artifacts bucket."""
    aws = RecordingAws(stack_status="CREATE_COMPLETE", final=("DELETE_COMPLETE", []))
    (tmp_path / "aws-prod.json").write_text("{}")
    result = deployer(aws, tmp_path).destroy()
    assert result["destroyed"] is True and result["artifacts_removed"] == 1
    assert aws.names().index("delete_stack") < aws.names().index("delete_bucket")
    assert ("wait_for_stack", "id-1") == aws.calls[aws.names().index("wait_for_stack")][:2]
    assert not (tmp_path / "aws-prod.json").exists()


def test_template_parameters_from_settings() -> None:
    """Minutes, SLA, the at-risk threshold and a daily cron in the operator's time zone."""
    settings = PipelineSettings(sla_seconds=900, sync_every_seconds=300, refresh_at="02:30", timezone="America/Chicago")
    params = template_parameters("prod", settings, "bucket", "key", {"WarehouseMode": "provisioned"})
    assert params["SyncScheduleMinutes"] == "5" and params["SlaSeconds"] == "900"
    assert params["SlaAtRiskSeconds"] == "600"
    assert params["RefreshCron"] == "cron(30 2 * * ? *)" and params["RefreshTimezone"] == "America/Chicago"
    assert params["WarehouseMode"] == "provisioned"


def test_schedules_in_seconds_are_refused_on_aws() -> None:
    """EventBridge rates are whole minutes: 90 s is refused with a hint."""
    with pytest.raises(TxpipeError, match="whole minutes"):
        template_parameters("prod", PipelineSettings(sync_every_seconds=90), "b", "k", {})


@pytest.mark.parametrize(("change", "refused"), [
    (Change("Modify", "OltpDatabase", "AWS::RDS::DBInstance", "True"), True),
    (Change("Modify", "WarehouseNamespace", "AWS::RedshiftServerless::Namespace", "Conditional"), True),
    (Change("Remove", "WarehouseCluster", "AWS::Redshift::Cluster", "-"), True),
    (Change("Modify", "OltpDatabase", "AWS::RDS::DBInstance", "False"), False),
    (Change("Modify", "WarehouseWorkgroup", "AWS::RedshiftServerless::Workgroup", "True"), False),
])
def test_a_change_that_would_replace_a_data_store_is_refused(tmp_path: Path, change: Change, refused: bool) -> None:
    """Replacing the RDS instance, the namespace or the cluster would leave the orders in a final snapshot, and
    their fixed names make the replacement fail anyway: refused before anything executes, change set deleted."""
    aws = RecordingAws(stack_status="UPDATE_COMPLETE", stored={CODE_KEY, TEMPLATE.key}, changes=[change])
    if not refused:
        assert deployer(aws, tmp_path).deploy(PipelineSettings()).action == "updated"
        assert "execute_change_set" in aws.names()
        return
    with pytest.raises(TxpipeError, match=f"would replace {change.logical_id} \\({change.resource_type}\\)"):
        deployer(aws, tmp_path).deploy(PipelineSettings())
    assert "execute_change_set" not in aws.names() and aws.names()[-1] == "delete_change_set"

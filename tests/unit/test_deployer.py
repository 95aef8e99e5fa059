"""The AWS deploy orchestration (txpipe_cli/aws/deployer.py) against a scripted account.

The moto tests cover the calls against an emulator; these cover the order of the stages and the branches
moto cannot produce: a failed stack operation, an abandoned plan's shell, a stack that must be destroyed
first, a change that would replace a database. The real AwsClient runs over a boto3 session whose requests are
validated against botocore's service models and answered at the network edge by tests/support/scripted_aws.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdas.functions import FUNCTIONS
from tests.support.scripted_aws import PLANNING, READS, StackCloud
from txpipe_cli.aws.client import AwsClient, TemplateSource
from txpipe_cli.aws.deployer import Deployer, DeployOptions, template_parameters
from txpipe_cli.aws.package import CompiledTemplate
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError

CODE_KEY = "lambdas/txpipe-lambdas-0123456789abcdef.zip"
TEMPLATE = CompiledTemplate(b'{"Resources":{}}', "fedcba9876543210" * 4)
BUCKET = "txpipe-artifacts-123456789012-eu-west-1"


def source(cloud: StackCloud) -> TemplateSource:
    [params] = cloud.params("CreateChangeSet")
    return TemplateSource(body=params.get("TemplateBody", ""), url=params.get("TemplateURL", ""))


def puts(cloud: StackCloud) -> list[str]:
    """The keys put in the bucket, in order (the artifact by upload_file, the template by put_object)."""
    return [params["Key"] for params in cloud.params("PutObject")]


def deployer(cloud: StackCloud, tmp_path: Path) -> Deployer:
    artifact = tmp_path / "txpipe-lambdas-0123456789abcdef.zip"
    artifact.write_bytes(b"zip")
    return Deployer(AwsClient(session=cloud.session, sleep=lambda _: None), tmp_path, "prod",
                    build=lambda _: {"functions": {"ingest": {"zip": str(artifact)}}}, template=lambda: TEMPLATE)


PLAN = DeployOptions(plan_only=True)


def test_plan_of_a_new_stack_only_reads_and_deletes_its_shell(tmp_path: Path) -> None:
    """--plan on a new stack: a CREATE change set from the request, described, then the REVIEW shell is
    deleted; no bucket is made, nothing uploaded, executed or migrated."""
    cloud = StackCloud()
    result = deployer(cloud, tmp_path).deploy(PipelineSettings(), PLAN)
    assert result.action == "planned" and result.changes[0]["resource"] == "OrdersQueue"
    assert result.template_source == "TemplateBody" and source(cloud).body == TEMPLATE.body.decode()
    assert result.uploads == [CODE_KEY, TEMPLATE.key] and result.uploaded is False
    assert cloud.scripted.calls[-1] == ("DeleteStack", {"StackName": "txpipe-prod"})
    assert set(cloud.names()) <= READS | PLANNING and cloud.status is None


def test_plan_of_an_existing_stack_deletes_only_the_change_set(tmp_path: Path) -> None:
    """--plan on a live stack: an UPDATE change set, read from the bucket, deleted afterwards."""
    cloud = StackCloud(stack_status="UPDATE_COMPLETE", stored={CODE_KEY, TEMPLATE.key})
    result = deployer(cloud, tmp_path).deploy(PipelineSettings(), PLAN)
    assert cloud.params("CreateChangeSet")[0]["ChangeSetType"] == "UPDATE"
    assert source(cloud).url.endswith(f".amazonaws.com/{TEMPLATE.key}") and result.uploads == []
    assert "DeleteChangeSet" in cloud.names() and "DeleteStack" not in cloud.names()
    assert set(cloud.names()) <= READS | PLANNING


def test_deploy_uploads_the_template_before_the_change_set_reads_it(tmp_path: Path) -> None:
    """A first deploy: bucket, artifact and template first, then a change set by TemplateURL, then execute,
    then migrate through ops."""
    cloud = StackCloud()
    result = deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert result.action == "created" and result.uploaded and result.uploads == [CODE_KEY, TEMPLATE.key]
    names = cloud.names()
    assert names.index("CreateBucket") < names.index("PutObject") < names.index("CreateChangeSet")
    assert puts(cloud) == [CODE_KEY, TEMPLATE.key]
    assert names.index("CreateChangeSet") < names.index("ExecuteChangeSet") < names.index("Invoke")
    [template] = [p for p in cloud.params("PutObject") if p["Key"] == TEMPLATE.key]
    body = template["Body"].getvalue()  # botocore hands S3 a file-like body
    assert (template["Bucket"], body, template["ContentType"]) == (BUCKET, TEMPLATE.body, "application/json")
    assert source(cloud) == TemplateSource(url=f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/{TEMPLATE.key}")
    assert result.template_source == "TemplateURL"
    [invoked] = cloud.params("Invoke")
    assert (invoked["FunctionName"], invoked["Payload"]) == ("txpipe-prod-ops", b'{"action": "migrate"}')
    assert result.record["bucket"] == BUCKET
    assert (result.record["code_key"], result.record["template_key"]) == (CODE_KEY, TEMPLATE.key)
    assert list(result.record["functions"]) == list(FUNCTIONS)


def test_the_estimate_is_sent_before_the_change_set_is_executed(tmp_path: Path) -> None:
    """A deploy that will create something sends its monthly estimate to on_event before executing; the result
    carries it too. A plan carries it without the event (nothing is executed)."""
    cloud, events = StackCloud(), []
    result = deployer(cloud, tmp_path).deploy(
        PipelineSettings(), on_event=lambda e: events.append((len(cloud.names()), e)))
    [(calls_before, event)] = [(n, e) for n, e in events if "estimate" in e]
    assert "ExecuteChangeSet" not in cloud.names()[:calls_before] and "ExecuteChangeSet" in cloud.names()
    assert event["estimate"] == result.estimate and result.estimate["orders_per_month"] == 1_000_000
    assert result.estimate["total_usd"] == 0.0  # this stand-in template holds no resource
    planned_cloud, planned_events = StackCloud(), []
    planned = deployer(planned_cloud, tmp_path).deploy(
        PipelineSettings(), DeployOptions(plan_only=True, orders_per_month=42), on_event=planned_events.append)
    assert planned.estimate["orders_per_month"] == 42 and not planned_events


def test_no_changes_means_no_upload_no_execute(tmp_path: Path) -> None:
    """An empty change set, everything already in the bucket: nothing uploaded or executed, the change set
    deleted, and the result says unchanged."""
    cloud = StackCloud(stack_status="CREATE_COMPLETE", ready=False, stored={CODE_KEY, TEMPLATE.key})
    result = deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert result.action == "unchanged" and result.uploads == []
    assert not {"CreateBucket", "PutObject", "ExecuteChangeSet", "Invoke"} & set(cloud.names())
    assert "DeleteChangeSet" in cloud.names()
    assert (tmp_path / "aws-prod.json").exists()


def test_only_the_missing_object_is_uploaded(tmp_path: Path) -> None:
    """A change to the template alone: the bucket and the artifact are there, only the template is put."""
    cloud = StackCloud(stack_status="UPDATE_COMPLETE", stored={CODE_KEY})
    result = deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert result.action == "updated" and result.uploads == [TEMPLATE.key]
    assert puts(cloud) == [TEMPLATE.key] and "CreateBucket" not in cloud.names()


def test_a_failed_stack_operation_reports_the_failed_events(tmp_path: Path) -> None:
    """A rollback ends the deploy with each failed resource's reason, and no migration runs."""
    failed = [{"LogicalResourceId": "OltpDatabase", "ResourceStatus": "CREATE_FAILED",
               "ResourceStatusReason": "DB instance class not supported"}]
    cloud = StackCloud(final=("ROLLBACK_COMPLETE", failed))
    with pytest.raises(TxpipeError, match="OltpDatabase: DB instance class not supported") as info:
        deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert "ROLLBACK_COMPLETE" in info.value.reason
    assert "Invoke" not in cloud.names()


def test_a_stack_that_failed_to_create_must_be_destroyed_first(tmp_path: Path) -> None:
    """ROLLBACK_COMPLETE cannot be updated: deploy says to destroy it, before uploading or planning anything."""
    cloud = StackCloud(stack_status="ROLLBACK_COMPLETE")
    with pytest.raises(TxpipeError, match="ROLLBACK_COMPLETE") as info:
        deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert "destroy" in (info.value.hint or "")
    assert not {"CreateChangeSet", "CreateBucket", "PutObject"} & set(cloud.names())


def test_an_interrupted_plans_shell_is_replaced(tmp_path: Path) -> None:
    """A REVIEW_IN_PROGRESS stack (a plan cut short) holds no resource: it is deleted and planned as new."""
    cloud = StackCloud(stack_status="REVIEW_IN_PROGRESS")
    deployer(cloud, tmp_path).deploy(PipelineSettings(), PLAN)
    names = cloud.names()
    assert names.index("DeleteStack") < names.index("CreateChangeSet")
    assert cloud.params("CreateChangeSet")[0]["ChangeSetType"] == "CREATE"


def test_destroy_deletes_stack_then_bucket_then_record(tmp_path: Path) -> None:
    """destroy follows the deletion by stack id, then empties and deletes the artifacts bucket."""
    cloud = StackCloud(stack_status="CREATE_COMPLETE", stored={CODE_KEY})
    (tmp_path / "aws-prod.json").write_text("{}")
    result = deployer(cloud, tmp_path).destroy()
    assert result["destroyed"] is True and result["artifacts_removed"] == 1
    names = cloud.names()
    assert names.index("DeleteStack") < names.index("DeleteObjects") < names.index("DeleteBucket")
    after = names.index("DeleteStack")
    assert {"StackName": "id-1"} in [p for n, p in cloud.scripted.calls[after:] if n == "DescribeStacks"]
    assert cloud.stored is None and not (tmp_path / "aws-prod.json").exists()


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
    (("Modify", "OltpDatabase", "AWS::RDS::DBInstance", "True"), True),
    (("Modify", "WarehouseNamespace", "AWS::RedshiftServerless::Namespace", "Conditional"), True),
    (("Remove", "WarehouseCluster", "AWS::Redshift::Cluster", None), True),
    (("Modify", "OltpDatabase", "AWS::RDS::DBInstance", "False"), False),
    (("Modify", "WarehouseWorkgroup", "AWS::RedshiftServerless::Workgroup", "True"), False),
])
def test_a_change_that_would_replace_a_data_store_is_refused(tmp_path: Path, change: tuple[Any, ...],
                                                             refused: bool) -> None:
    """Replacing the RDS instance, the namespace or the cluster would leave the orders in a final snapshot, and
    their fixed names make the replacement fail anyway: refused before anything executes, change set deleted."""
    action, logical_id, kind, replacement = change
    described = {"Action": action, "LogicalResourceId": logical_id, "ResourceType": kind,
                 **({"Replacement": replacement} if replacement else {})}
    cloud = StackCloud(stack_status="UPDATE_COMPLETE", stored={CODE_KEY, TEMPLATE.key}, changes=[described])
    if not refused:
        assert deployer(cloud, tmp_path).deploy(PipelineSettings()).action == "updated"
        assert "ExecuteChangeSet" in cloud.names()
        return
    with pytest.raises(TxpipeError, match=f"would replace {logical_id} \\({kind}\\)"):
        deployer(cloud, tmp_path).deploy(PipelineSettings())
    assert "ExecuteChangeSet" not in cloud.names() and cloud.names()[-1] == "DeleteChangeSet"


def test_a_size_the_price_table_lacks_is_said_and_the_deploy_goes_on(tmp_path: Path) -> None:
    """An instance class missing from prices.json leaves the plan without an estimate, saying why; the deploy
    itself is not the price table's to stop."""
    from txpipe_cli.aws.package import compile_template

    cloud = StackCloud()
    artifact = tmp_path / "txpipe-lambdas-0123456789abcdef.zip"
    artifact.write_bytes(b"zip")
    result = Deployer(AwsClient(session=cloud.session, sleep=lambda _: None), tmp_path, "prod",
                      build=lambda _: {"functions": {"ingest": {"zip": str(artifact)}}},
                      template=compile_template).deploy(
        PipelineSettings(sync_every_seconds=780), DeployOptions(parameters={"DbInstanceClass": "db.x9.huge"}))
    assert result.action == "created" and result.estimate == {}
    assert "db.x9.huge" in result.estimate_error and "prices.json" in result.estimate_error

"""The AWS deploy orchestration (txpipe_cli/aws/deployer.py) over a recording AwsClient stand-in.

The moto tests cover the real calls; these cover the branches moto cannot produce:
a failed stack operation, an abandoned plan's shell, a stack that must be destroyed first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from txpipe_cli.aws.client import Change, ChangeSet
from txpipe_cli.aws.deployer import Deployer, template_parameters
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError


class RecordingAws:
    """Answers like AWS would for one scripted scenario and records the calls made."""

    region = "eu-west-1"

    def __init__(self, stack_status: str | None = None, ready: bool = True,
                 final: tuple[str, list[dict[str, Any]]] = ("CREATE_COMPLETE", [])) -> None:
        self.stack_status, self.ready, self.final = stack_status, ready, final
        self.calls: list[tuple[Any, ...]] = []

    def account_id(self) -> str:
        return "123456789012"

    def stack(self, name: str) -> dict[str, Any] | None:
        return {"StackStatus": self.stack_status, "StackId": "id-1"} if self.stack_status else None

    def create_change_set(self, stack: str, name: str, template: str, parameters: dict[str, str],
                          change_type: str) -> ChangeSet:
        self.calls.append(("create_change_set", change_type, parameters["CodeKey"]))
        changes = [Change("Add", "OrdersQueue", "AWS::SQS::Queue", "-")] if self.ready else []
        return ChangeSet(name, self.ready, changes, "" if self.ready else "didn't contain changes")

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, *args))
            return {"ensure_bucket": True, "object_exists": False, "stack_outputs": {}, "stack_resources": {},
                    "queue_url": None, "invoke": {"applied": {"oltp": [1], "warehouse": [1]}},
                    "wait_for_stack": self.final, "delete_bucket": 1}.get(name)

        return record

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]


def deployer(aws: RecordingAws, tmp_path: Path) -> Deployer:
    artifact = tmp_path / "txpipe-lambdas-0123456789abcdef.zip"
    artifact.write_bytes(b"zip")
    return Deployer(aws, tmp_path, "prod", build=lambda _: {"functions": {"ingest": {"zip": str(artifact)}}},
                    template=lambda: "template")


def test_plan_of_a_new_stack_deletes_its_shell_and_uploads_nothing(tmp_path: Path) -> None:
    """--plan on a new stack: a CREATE change set is described, then the REVIEW shell is deleted."""
    aws = RecordingAws()
    result = deployer(aws, tmp_path).deploy(PipelineSettings(), plan=True)
    assert result.action == "planned" and result.changes[0]["resource"] == "OrdersQueue"
    assert ("create_change_set", "CREATE", "lambdas/txpipe-lambdas-0123456789abcdef.zip") in aws.calls
    assert "delete_stack" in aws.names()
    assert not {"ensure_bucket", "upload", "execute_change_set", "invoke"} & set(aws.names())


def test_plan_of_an_existing_stack_deletes_only_the_change_set(tmp_path: Path) -> None:
    """--plan on a live stack: an UPDATE change set, deleted afterwards; the stack is untouched."""
    aws = RecordingAws(stack_status="UPDATE_COMPLETE")
    deployer(aws, tmp_path).deploy(PipelineSettings(), plan=True)
    assert aws.calls[0][:2] == ("create_change_set", "UPDATE")
    assert "delete_change_set" in aws.names() and "delete_stack" not in aws.names()


def test_no_changes_means_no_upload_no_execute(tmp_path: Path) -> None:
    """An empty change set: nothing is uploaded or executed, and the result says unchanged."""
    aws = RecordingAws(stack_status="CREATE_COMPLETE", ready=False)
    result = deployer(aws, tmp_path).deploy(PipelineSettings())
    assert result.action == "unchanged"
    assert not {"upload", "execute_change_set", "invoke"} & set(aws.names())
    assert (tmp_path / "aws-prod.json").exists()


def test_apply_uploads_executes_and_migrates(tmp_path: Path) -> None:
    """A real change: upload under the content hash, execute, then migrate through ops."""
    aws = RecordingAws()
    result = deployer(aws, tmp_path).deploy(PipelineSettings())
    assert result.action == "created" and result.uploaded
    names = aws.names()
    assert names.index("upload") < names.index("execute_change_set") < names.index("invoke")
    assert ("invoke", "txpipe-prod-ops", {"action": "migrate"}) in aws.calls
    assert result.record["bucket"] == "txpipe-artifacts-123456789012-eu-west-1"


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
    """ROLLBACK_COMPLETE cannot be updated: deploy says to destroy it, before planning anything."""
    aws = RecordingAws(stack_status="ROLLBACK_COMPLETE")
    with pytest.raises(TxpipeError, match="ROLLBACK_COMPLETE") as info:
        deployer(aws, tmp_path).deploy(PipelineSettings())
    assert "destroy" in (info.value.hint or "")
    assert "create_change_set" not in aws.names()


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

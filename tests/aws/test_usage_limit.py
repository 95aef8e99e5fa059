"""The warehouse bill's guard: deploy keeps one monthly usage limit on the Redshift Serverless workgroup
(txpipe_cli/aws/applier.py: AwsApplier._usage_limit; client.py: AwsClient.ensure_usage_limit).

CloudFormation has no resource type for it, so the applier ensures it after the stack. moto does not model
Redshift Serverless: the create / update / unchanged cases run against botocore's Stubber on real clients
(each call's name and parameters checked against the service model); a stack without a workgroup (the
provisioned warehouse, or moto's) is skipped, shown on moto itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber

from tests.aws.sqs_helpers import REGION
from txpipe_cli.aws.applier import AwsApplier
from txpipe_cli.aws.client import AwsClient, ChangeSet, TemplateSource
from txpipe_cli.aws.planner import Plan, Upload
from txpipe_cli.config import PipelineSettings

STAGE = "ci"
STACK = f"txpipe-{STAGE}"
WORKGROUP = f"arn:aws:redshift-serverless:{REGION}:123456789012:workgroup/0b5e3b6a-7c1d-4e2f-9a8b-1c2d3e4f5a6b"
TEMPLATE = {"Parameters": {"Stage": {"Type": "String"},
                           "RedshiftMonthlyRpuHours": {"Type": "Number", "Default": 400, "MinValue": 1}}}
LIMIT = {"usageType": "serverless-compute", "period": "monthly", "breachAction": "deactivate"}


def plan(template: dict[str, Any], parameters: dict[str, str] | None = None,
         change_set: ChangeSet | None = None, change_type: str = "UPDATE") -> Plan:
    body = json.dumps(template).encode()
    return Plan(STACK, change_type, "txpipe-artifacts-123456789012-us-east-1", True,
                Upload("lambdas/txpipe-lambdas-0123.zip", True), Upload("templates/0123.json", True, body=body),
                {"Stage": STAGE, **(parameters or {})}, PipelineSettings(),
                change_set=change_set or ChangeSet("txpipe-1", False, [], "didn't contain changes"))


class Stubbed:
    """An AwsClient on a real boto3 session whose CloudFormation and Redshift Serverless clients answer
    through Stubbers: the stack, unchanged, with these outputs; then what the test queues."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.aws = AwsClient(boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                                   region_name=REGION))
        self.cloudformation = Stubber(self.aws.client("cloudformation"))
        self.serverless = Stubber(self.aws.client("redshift-serverless"))
        queues = {"OrdersQueueUrl": "https://sqs/orders", "DeadLetterQueueUrl": "https://sqs/orders-dlq"}
        self.cloudformation.add_response("describe_stacks", {"Stacks": [{
            "StackName": STACK, "StackId": f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}/1",
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC), "StackStatus": "UPDATE_COMPLETE",
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in {**queues, **outputs}.items()]}]},
            {"StackName": STACK})
        self.cloudformation.add_response("list_stack_resources", {"StackResourceSummaries": []}, {"StackName": STACK})

    def apply(self, tmp_path: Path, deployed: Plan) -> dict[str, Any]:
        with self.cloudformation, self.serverless:
            result = AwsApplier(self.aws, tmp_path, STAGE).apply(deployed)
            self.cloudformation.assert_no_pending_responses()
            self.serverless.assert_no_pending_responses()
        assert result.action == "unchanged"
        return result.to_dict()["usage_limit"]

    def limits(self, *pages: list[dict[str, Any]]) -> None:
        """ListUsageLimits answers these pages, in order."""
        for number, page in enumerate(pages):
            more = {"nextToken": f"next-page-{number + 1}"} if number + 1 < len(pages) else {}
            asked = {"resourceArn": WORKGROUP, "usageType": "serverless-compute",
                     **({"nextToken": f"next-page-{number}"} if number else {})}
            self.serverless.add_response("list_usage_limits", {"usageLimits": page, **more}, asked)


def existing(amount: int, period: str = "monthly", breach: str = "deactivate") -> dict[str, Any]:
    return {**LIMIT, "period": period, "breachAction": breach, "amount": amount, "resourceArn": WORKGROUP,
            "usageLimitId": f"limit-{period}", "usageLimitArn": f"{WORKGROUP}/limit-{period}"}


def test_a_workgroup_without_a_limit_gets_one_at_the_templates_default(tmp_path: Path) -> None:
    """None yet (a daily one does not count): CreateUsageLimit, monthly, 400 RPU-hours (the template's
    default), deactivate on breach."""
    account = Stubbed({"WarehouseWorkgroupArn": WORKGROUP})
    account.limits([existing(10, period="daily")])
    created = {**LIMIT, "amount": 400, "resourceArn": WORKGROUP}
    account.serverless.add_response("create_usage_limit", {"usageLimit": {**created, "usageLimitId": "new"}}, created)
    assert account.apply(tmp_path, plan(TEMPLATE)) == {
        "action": "created", "workgroup": WORKGROUP, "usage_type": "serverless-compute", "period": "monthly",
        "amount": 400, "breach_action": "deactivate"}


def test_a_new_amount_updates_the_limit_in_place(tmp_path: Path) -> None:
    """--param RedshiftMonthlyRpuHours=250 over a 400 limit: UpdateUsageLimit of that limit, even though the
    stack itself is unchanged (a parameter no resource uses changes no resource)."""
    account = Stubbed({"WarehouseWorkgroupArn": WORKGROUP})
    account.limits([existing(400)])
    account.serverless.add_response("update_usage_limit", {"usageLimit": existing(250)},
                                    {"usageLimitId": "limit-monthly", "amount": 250, "breachAction": "deactivate"})
    done = account.apply(tmp_path, plan(TEMPLATE, {"RedshiftMonthlyRpuHours": "250"}))
    assert (done["action"], done["amount"]) == ("updated", 250)


def test_a_limit_that_only_logs_is_made_to_deactivate(tmp_path: Path) -> None:
    """The right amount but breach action `log` (set by hand): updated to deactivate, the guard's point."""
    account = Stubbed({"WarehouseWorkgroupArn": WORKGROUP})
    account.limits([existing(400, breach="log")])
    account.serverless.add_response("update_usage_limit", {"usageLimit": existing(400)},
                                    {"usageLimitId": "limit-monthly", "amount": 400, "breachAction": "deactivate"})
    assert account.apply(tmp_path, plan(TEMPLATE))["action"] == "updated"


def test_the_same_limit_is_left_alone(tmp_path: Path) -> None:
    """The monthly limit already at 400 and deactivate, found on the second page: nothing created or
    updated (the Stubber refuses any call not queued)."""
    account = Stubbed({"WarehouseWorkgroupArn": WORKGROUP})
    account.limits([existing(10, period="daily")], [existing(400)])
    done = account.apply(tmp_path, plan(TEMPLATE))
    assert (done["action"], done["amount"]) == ("unchanged", 400)


@pytest.mark.parametrize("outputs", [{}, {"WarehouseWorkgroupArn": "WarehouseWorkgroup.Workgroup.WorkgroupArn"}],
                         ids=["provisioned", "placeholder"])
def test_a_stack_without_a_serverless_workgroup_is_skipped(tmp_path: Path, outputs: dict[str, str]) -> None:
    """No WarehouseWorkgroupArn output (the provisioned warehouse), or a placeholder where an emulator
    skipped the workgroup: skipped, saying why, and Redshift Serverless is never called."""
    done = Stubbed(outputs).apply(tmp_path, plan(TEMPLATE))
    assert done == {"action": "skipped", "reason": "the stack has no Redshift Serverless workgroup",
                    "usage_type": "serverless-compute", "period": "monthly", "amount": 400,
                    "breach_action": "deactivate"}


# ---------------------------------------------------------------------------------------------- on moto

OPS_STACK = {
    **TEMPLATE,
    "Resources": {
        "OpsRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}}},
        "OpsFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": {"Fn::Sub": "txpipe-${Stage}-ops"}, "Runtime": "python3.12", "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["OpsRole", "Arn"]}, "Code": {"ZipFile": "def handler(event, context): pass"}}},
    },
    "Outputs": {"OpsFunctionName": {"Value": {"Ref": "OpsFunction"}}},
}
MOTO_API = "http://motoapi.amazonaws.com/moto-api"


@pytest.fixture
def lambda_answers(aws: None) -> Iterator[None]:
    """moto in-process, running Lambda without Docker (invocations answer queued results)."""
    requests.post(f"{MOTO_API}/config", json={"lambda": {"use_docker": False}}, timeout=10).raise_for_status()
    yield
    requests.post(f"{MOTO_API}/config", json={"lambda": {"use_docker": True}}, timeout=10).raise_for_status()


def test_a_deploy_on_moto_skips_the_limit_and_completes(lambda_answers: None, tmp_path: Path) -> None:
    """A stack created through a change set on moto (no Redshift Serverless there): applied, migrated through
    ops, recorded, and the usage limit skipped with its reason; nothing asked of Redshift Serverless."""
    aws = AwsClient(sleep=lambda _: None)
    change_set = aws.create_change_set(STACK, "txpipe-1", TemplateSource(body=json.dumps(OPS_STACK)),
                                       {"Stage": STAGE}, "CREATE")
    migrated = {"applied": {"oltp": [1], "warehouse": [1]}}
    requests.post(f"{MOTO_API}/static/lambda-simple/response",
                  json={"results": [json.dumps(migrated)], "region": REGION}, timeout=10).raise_for_status()
    asked: list[str] = []
    aws.client("redshift-serverless").meta.events.register("before-call", lambda model, **_: asked.append(model.name))
    result = AwsApplier(aws, tmp_path, STAGE).apply(plan(OPS_STACK, change_set=change_set, change_type="CREATE"))
    assert (result.action, result.migrations) == ("created", migrated)
    assert result.usage_limit["action"] == "skipped" and result.usage_limit["amount"] == 400
    assert result.to_dict()["usage_limit"] == result.usage_limit and asked == []
    assert json.loads((tmp_path / f"aws-{STAGE}.json").read_text())["functions"]["ops"] == f"txpipe-{STAGE}-ops"

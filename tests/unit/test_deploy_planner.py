"""The deploy planner (txpipe_cli/aws/planner.py): where CloudFormation reads the template from, and what
a plan reads, against the scripted account of tests/support/scripted_aws.py (real AwsClient and botocore clients)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.scripted_aws import PLANNING, READS, StackCloud
from txpipe_cli.aws.client import AwsClient, TemplateSource
from txpipe_cli.aws.package import TEMPLATE_BODY_LIMIT, CompiledTemplate
from txpipe_cli.aws.planner import Planner
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError

ARTIFACT = Path("/build/txpipe-lambdas-0123456789abcdef.zip")


def template_of(size: int) -> CompiledTemplate:
    body = b'{"Description":"' + b"x" * (size - 18) + b'"}'
    assert len(body) == size
    return CompiledTemplate(body, hashlib.sha256(body).hexdigest())


def planner(cloud: StackCloud) -> Planner:
    return Planner(AwsClient(session=cloud.session, sleep=lambda _: None), "prod", clock=lambda: 1700000000.5)


def planned(cloud: StackCloud, template: CompiledTemplate) -> Planner:
    made = planner(cloud)
    made.change_set(made.plan(PipelineSettings(), {}, ARTIFACT, template))
    return made


def source(cloud: StackCloud) -> TemplateSource:
    [params] = cloud.params("CreateChangeSet")
    return TemplateSource(body=params.get("TemplateBody", ""), url=params.get("TemplateURL", ""))


def test_a_template_at_the_request_limit_is_sent_in_the_request() -> None:
    """Not in the bucket yet and exactly 51,200 bytes: TemplateBody, CloudFormation's limit for it."""
    cloud = StackCloud()
    planned(cloud, template_of(TEMPLATE_BODY_LIMIT))
    assert len(source(cloud).body) == TEMPLATE_BODY_LIMIT and source(cloud).url == ""


def test_a_template_over_the_request_limit_needs_a_first_deploy() -> None:
    """51,201 bytes and not in the bucket: the plan stops with one line saying to deploy once, before
    CloudFormation is asked anything."""
    cloud = StackCloud()
    with pytest.raises(TxpipeError) as raised:
        planned(cloud, template_of(TEMPLATE_BODY_LIMIT + 1))
    line = raised.value.line()
    assert "51,201 bytes" in line and "51,200-byte" in line and "deploy once" in line and "\n" not in line
    assert "CreateChangeSet" not in cloud.names()


def test_a_template_in_the_bucket_is_read_from_there_whatever_its_size() -> None:
    """Once a deploy has stored it, the change set reads it by TemplateURL (up to CloudFormation's 1 MB)."""
    big = template_of(TEMPLATE_BODY_LIMIT + 1)
    cloud = StackCloud(stack_status="UPDATE_COMPLETE", stored={big.key})
    planned(cloud, big)
    assert source(cloud).body == ""
    assert source(cloud).url == f"https://txpipe-artifacts-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/{big.key}"


def test_planning_only_reads_and_plans_through_cloudformation() -> None:
    """plan, change_set and discard call nothing but reads and change-set calls."""
    cloud = StackCloud(stack_status="UPDATE_COMPLETE", stored=set())
    made = planner(cloud)
    plan = made.change_set(made.plan(PipelineSettings(), {"StoreBatchSize": "20"}, ARTIFACT, template_of(100)))
    made.discard(plan)
    assert set(cloud.names()) <= READS | PLANNING
    assert plan.change_set is not None and plan.change_set.name == "txpipe-1700000000500"
    assert [upload.key for upload in plan.uploads] == [f"lambdas/{ARTIFACT.name}", template_of(100).key]
    assert plan.parameters["StoreBatchSize"] == "20" and plan.parameters["CodeKey"] == f"lambdas/{ARTIFACT.name}"
    assert cloud.scripted.calls[-1] == ("DeleteChangeSet", {"StackName": "txpipe-prod",
                                                            "ChangeSetName": "txpipe-1700000000500"})

"""The deploy planner (txpipe_cli/aws/planner.py): where CloudFormation reads the template from, and what
a plan reads, over the recording AwsClient stand-in of test_deployer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.test_deployer import PLANNING, READS, RecordingAws
from txpipe_cli.aws.package import TEMPLATE_BODY_LIMIT, CompiledTemplate
from txpipe_cli.aws.planner import Planner
from txpipe_cli.config import PipelineSettings
from txpipe_cli.errors import TxpipeError

ARTIFACT = Path("/build/txpipe-lambdas-0123456789abcdef.zip")


def template_of(size: int) -> CompiledTemplate:
    body = b'{"Description":"' + b"x" * (size - 18) + b'"}'
    assert len(body) == size
    return CompiledTemplate(body, hashlib.sha256(body).hexdigest())


def planned(aws: RecordingAws, template: CompiledTemplate) -> Planner:
    planner = Planner(aws, "prod", clock=lambda: 1700000000.5)
    planner.change_set(planner.plan(PipelineSettings(), {}, ARTIFACT, template))
    return planner


def test_a_template_at_the_request_limit_is_sent_in_the_request() -> None:
    """Not in the bucket yet and exactly 51,200 bytes: TemplateBody, CloudFormation's limit for it."""
    aws = RecordingAws()
    planned(aws, template_of(TEMPLATE_BODY_LIMIT))
    assert len(aws.source().body) == TEMPLATE_BODY_LIMIT and aws.source().url == ""


def test_a_template_over_the_request_limit_needs_a_first_deploy() -> None:
    """51,201 bytes and not in the bucket: the plan stops with one line saying to deploy once, before
    CloudFormation is asked anything."""
    aws = RecordingAws()
    with pytest.raises(TxpipeError) as raised:
        planned(aws, template_of(TEMPLATE_BODY_LIMIT + 1))
    line = raised.value.line()
    assert "51,201 bytes" in line and "51,200-byte" in line and "deploy once" in line and "\n" not in line
    assert "create_change_set" not in aws.names()


def test_a_template_in_the_bucket_is_read_from_there_whatever_its_size() -> None:
    """Once a deploy has stored it, the change set reads it by TemplateURL (up to CloudFormation's 1 MB)."""
    big = template_of(TEMPLATE_BODY_LIMIT + 1)
    aws = RecordingAws(stack_status="UPDATE_COMPLETE", stored={big.key})
    planned(aws, big)
    assert aws.source().body == ""
    assert aws.source().url == f"https://txpipe-artifacts-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/{big.key}"


def test_planning_only_reads_and_plans_through_cloudformation() -> None:
    """plan, change_set and discard call nothing but reads and change-set calls."""
    aws = RecordingAws(stack_status="UPDATE_COMPLETE", stored=set())
    planner = Planner(aws, "prod", clock=lambda: 1700000000.5)
    plan = planner.change_set(planner.plan(PipelineSettings(), {"StoreBatchSize": "20"}, ARTIFACT,
                                           template_of(100)))
    planner.discard(plan)
    assert set(aws.names()) <= READS | PLANNING
    assert plan.change_set is not None and plan.change_set.name == "txpipe-1700000000500"
    assert [upload.key for upload in plan.uploads] == [f"lambdas/{ARTIFACT.name}", template_of(100).key]
    assert plan.parameters["StoreBatchSize"] == "20" and plan.parameters["CodeKey"] == f"lambdas/{ARTIFACT.name}"
    assert aws.calls[-1] == ("delete_change_set", "txpipe-prod", "txpipe-1700000000500")

"""What CloudFormation receives (the template compiled to compact JSON) is within its documented limits:
51,200 bytes sent in the request (TemplateBody), 1 MB read from S3 (TemplateURL)."""

from __future__ import annotations

import json

import pytest
from cfnlint.decode.cfn_yaml import loads

from infra import name_api_deployments
from tests.support.template import TEMPLATE
from txpipe_cli.aws.package import TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT, compile_template
from txpipe_cli.errors import TxpipeError


@pytest.fixture(scope="module")
def compiled() -> bytes:
    return compile_template(TEMPLATE.read_text()).body


def test_the_limits_are_cloudformations() -> None:
    """The numbers the deploy checks against are the documented ones."""
    assert (TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT) == (51_200, 1_000_000)


def test_a_deploy_can_send_it_by_template_url(compiled: bytes) -> None:
    """Within 1 MB: CloudFormation reads it from the artifacts bucket."""
    assert len(compiled) <= TEMPLATE_URL_LIMIT


def test_a_plan_before_the_first_deploy_can_send_it_in_the_request(compiled: bytes) -> None:
    """Within 51,200 bytes: `deploy --plan` works before any deploy made the bucket. Past it, such a plan
    stops and says to deploy once (tests/unit/test_deploy_planner.py); deploys are not affected."""
    assert len(compiled) <= TEMPLATE_BODY_LIMIT, f"{len(compiled):,} bytes"


def test_it_is_compact_json_with_every_short_tag_resolved(compiled: bytes) -> None:
    """No whitespace between tokens, no YAML tag left, and the same document cfn-lint reads (the API deployment
    named after the API's definition: infra.name_api_deployments)."""
    document = json.loads(compiled)
    assert compiled == json.dumps(document, separators=(",", ":")).encode()
    assert b'"!' not in compiled
    assert document == name_api_deployments(json.loads(json.dumps(loads(TEMPLATE.read_text()))))
    assert document["Resources"]["OrdersQueue"]["Properties"]["QueueName"] == {"Fn::Sub": "txpipe-${Stage}-orders"}


def test_a_template_past_1_mb_is_refused_in_one_line() -> None:
    """The deploy stops before anything is uploaded, saying why."""
    padded = TEMPLATE.read_text() + f"\nMappings:\n  Padding:\n    All:\n      Value: {'x' * TEMPLATE_URL_LIMIT}\n"
    with pytest.raises(TxpipeError) as raised:
        compile_template(padded)
    assert "over CloudFormation's 1,000,000-byte limit" in raised.value.line()
    assert "\n" not in raised.value.line()


def test_the_resolved_template_shipped_is_the_yaml_resolved() -> None:
    """infra/template.json (what deploy sends, with no YAML tooling at run time) is infra/template.yaml
    resolved: after an edit of the YAML, `python -m infra` writes it again."""
    from infra import resolve, resolved_template

    assert resolved_template() == resolve(TEMPLATE.read_text()), "run: python -m infra"

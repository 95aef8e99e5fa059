"""Facts AWS enforces that no emulator checks, each read from the template with the page that states it."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import loads

from infra import name_api_deployments, resolved_template, template_body
from txpipe_cli.aws.resolve import Resolver

BASE = {"CodeBucket": "b", "CodeKey": "k", "S3PrefixListId": "pl-0123456789abcdef0"}
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based
# "rate(value unit)": unit minute | minutes | hour | hours | day | days; the singular for a value of 1.
RATE = re.compile(r"rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)")


def props(name: str, **given: str) -> dict[str, Any]:
    template = resolved_template()
    return Resolver(template, {**BASE, **given}).value(template["Resources"][name]["Properties"])


@pytest.mark.parametrize("minutes", ["1", "2", "13", "60"])
def test_the_sync_schedule_is_eventbridge_rate_grammar(minutes: str) -> None:
    expression = props("SyncSchedule", SyncScheduleMinutes=minutes)["ScheduleExpression"]
    assert RATE.fullmatch(expression), expression
    assert RATE.fullmatch("rate(1 minutes)") is None  # what the template said before: refused


def test_an_api_change_makes_a_new_deployment() -> None:
    """A deployment is an immutable snapshot: "every time you update an API, you must redeploy the API"
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-deploy-api.html). CloudFormation replaces
    a resource whose logical id changes, so the id carries a hash of the API's definition, and the stage follows."""
    template = resolved_template()
    [deployment] = [n for n, r in template["Resources"].items() if r["Type"] == "AWS::ApiGateway::Deployment"]
    assert template["Resources"]["OrdersApiStage"]["Properties"]["DeploymentId"] == {"Ref": deployment}
    source = json.loads(json.dumps(loads(template_body())))  # as written: OrdersApiDeployment, unnamed
    assert name_api_deployments(copy.deepcopy(source)) == template  # the same API: the same deployment
    changed = copy.deepcopy(source)
    changed["Resources"]["OrdersPostMethod"]["Properties"]["ApiKeyRequired"] = False
    renamed = name_api_deployments(changed)
    [new] = [n for n, r in renamed["Resources"].items() if r["Type"] == "AWS::ApiGateway::Deployment"]
    assert new != deployment and renamed["Resources"]["OrdersApiStage"]["Properties"]["DeploymentId"] == {"Ref": new}


def test_destroy_keeps_a_final_snapshot_of_every_data_store() -> None:
    """RDS and a provisioned cluster: DeletionPolicy Snapshot. A Serverless namespace has no such policy; it takes
    FinalSnapshotName, "[a-z][a-z0-9]*(-[a-z0-9]+)*", up to 255 characters, and a retention (-1: until deleted)
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-redshiftserverless-namespace.html)."""
    resources = resolved_template()["Resources"]
    for name in ("OltpDatabase", "WarehouseCluster"):
        assert (resources[name]["DeletionPolicy"], resources[name]["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
    namespace = props("WarehouseNamespace", Stage="prod")
    snapshot = namespace["FinalSnapshotName"]
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", snapshot) and len(snapshot) <= 255, snapshot
    assert snapshot.startswith("txpipe-prod-final-")  # then the stack's id: a second destroy names another
    assert namespace["FinalSnapshotRetentionPeriod"] == -1


def test_security_groups_name_each_other_not_address_ranges() -> None:
    """A rule with a CIDR admits whatever sits there: 10.0.0.0/8 missed a default VPC's 172.31.0.0/16. Peers are
    groups or S3's prefix list (https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html);
    the only ranges left are 127.0.0.1/32 (no traffic: it replaces the default allow-all egress) and, in an
    existing VPC, HTTPS to anywhere, which its NAT or endpoints route."""
    for network in ({}, {"ExistingVpcId": "vpc-1", "ExistingSubnetIds": "subnet-a,subnet-b,subnet-c"}):
        template = resolved_template()
        resolver = Resolver(template, {**BASE, **network})
        for name, resource in template["Resources"].items():
            if not resource["Type"].startswith("AWS::EC2::SecurityGroup"):
                continue
            body = resolver.value(resource["Properties"])
            rules = [body] if "CidrIp" in body or "FromPort" in body else \
                body.get("SecurityGroupIngress", []) + body.get("SecurityGroupEgress", [])
            for rule in rules:
                cidr = rule.get("CidrIp")
                assert cidr in (None, "127.0.0.1/32") or (cidr == "0.0.0.0/0" and network and rule["FromPort"] == 443
                                                         and name == "FunctionSecurityGroup"), (name, rule)
                assert rule.get("Description"), (name, rule)


def test_redshift_serverless_gets_subnets_in_three_azs() -> None:
    """"You must have at least three subnets, and they must span across three Availability Zones"
    (https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-usage-considerations.html)."""
    template = resolved_template()
    subnets = props("WarehouseWorkgroup")["SubnetIds"]
    zones = {str(template["Resources"][s.strip("<>")]["Properties"]["AvailabilityZone"]) for s in subnets}
    assert len(subnets) == 3 and len(zones) == 3, zones


def test_serverless_capacity_is_a_size_redshift_offers() -> None:
    """Base capacity 4, or 8 to 512 in steps of 8 (https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-capacity.html);
    the most it may scale to is no less than the base."""
    workgroup = props("WarehouseWorkgroup")
    base, most = int(workgroup["BaseCapacity"]), int(workgroup["MaxCapacity"])
    assert base == 4 or (base % 8 == 0 and 8 <= base <= 512)
    assert most >= base and most % 8 == 0


@pytest.mark.parametrize("minutes", [1, 5, 13])
def test_the_sla_alarm_sees_a_run_in_every_period(minutes: int) -> None:
    """The sync reports OldestPendingSeconds once per run; with missing data treated as breaching, a period
    shorter than the interval would alarm between every two runs. CloudWatch periods are 10, 30 or a multiple of
    60 s (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)."""
    from txpipe_cli.aws.planner import template_parameters
    from txpipe_cli.config import PipelineSettings

    given = template_parameters("prod", PipelineSettings(sync_every_seconds=minutes * 60, sla_seconds=900), "b", "k",
                                {})
    alarm = props("SlaAtRiskAlarm", **{k: v for k, v in given.items() if k not in BASE})
    assert alarm["TreatMissingData"] == "breaching" and int(alarm["EvaluationPeriods"]) == 1
    period = int(alarm["Period"])
    assert period % 60 == 0 and period >= 2 * minutes * 60, period

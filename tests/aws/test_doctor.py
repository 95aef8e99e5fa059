"""`txpipe doctor --target aws`: the preflight, on moto where moto answers and botocore's Stubber where not.

moto answers STS (the caller, an assumed role), S3 (the bucket), EC2 (VPCs, Elastic IPs) and IAM's
GetRole; it implements neither iam:SimulatePrincipalPolicy nor Lambda's, RDS's and Redshift Serverless's
account calls, nor Service Quotas beyond VPC, so those clients get a Stubber with AWS's answer shapes.
"""

from __future__ import annotations

import fnmatch
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cfnlint.decode.cfn_yaml import loads
from typer.testing import CliRunner

from tests.aws.sqs_helpers import REGION
from txpipe_cli.app import app
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.doctor import OPERATOR_PERMISSIONS, SERVICE_OF, Doctor, Report, Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "infra" / "template.yaml").read_text()
ACCOUNT = "123456789012"
BUCKET = f"txpipe-artifacts-{ACCOUNT}-{REGION}"
STUBBED = ("iam", "lambda", "rds", "redshift-serverless", "service-quotas")


class Account:
    """An AwsClient for one caller on moto, with Stubbers on the clients moto cannot answer."""

    def __init__(self, session: boto3.session.Session, region: str = REGION, parameters: dict[str, str] | None = None,
                 stub: tuple[str, ...] = STUBBED) -> None:
        self.calls: list[str] = []  # every operation any client made: the doctor only reads

        def record(model: Any, **_: Any) -> None:
            self.calls.append(model.name)

        session.events.register("before-call", record)
        self.aws, self.region, self.parameters = AwsClient(session=session), region, parameters or {}
        self.stubs = {service: Stubber(self.aws.client(service)) for service in stub}
        for service, stubber in self.stubs.items():
            stubber.activate()  # a Stubber answers first; the record goes before it
            self.aws.client(service).meta.events.register_first("before-call.*.*", record)

    def groups(self) -> dict[str, list[str]]:
        report = Report("dev", self.region, ACCOUNT)
        return Doctor(self.aws, "dev", self.parameters).permission_groups(report)

    def allow(self, principal: str, deny: tuple[str, ...] = ()) -> None:
        context = [{"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": [self.region],
                    "ContextKeyType": "string"}]
        for resource, actions in self.groups().items():
            expected = {"PolicySourceArn": principal, "ActionNames": actions, "ContextEntries": context,
                        **({} if resource == "*" else {"ResourceArns": [resource]})}
            results = [{"EvalActionName": a, "EvalResourceName": resource,
                        "EvalDecision": "implicitDeny" if a in deny else "allowed"} for a in actions]
            self.stubs["iam"].add_response("simulate_principal_policy",
                                           {"EvaluationResults": results, "IsTruncated": False}, expected)

    def quotas(self, *, unreserved: int = 1000, vpcs: float = 5.0, db_instances: int = 0,
               workgroups: bool = True) -> None:
        self.stubs["lambda"].add_response("get_account_settings", {"AccountLimit": {
            "ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": unreserved}, "AccountUsage": {}}, {})
        if not self.parameters.get("ExistingVpcId"):  # the stack makes a VPC only without one of yours
            self.stubs["service-quotas"].add_response("get_service_quota", {"Quota": {
                "QuotaCode": "L-F678F1CE", "QuotaName": "VPCs per Region", "Value": vpcs}},
                {"ServiceCode": "vpc", "QuotaCode": "L-F678F1CE"})
        self.stubs["rds"].add_response("describe_account_attributes", {"AccountQuotas": [
            {"AccountQuotaName": "DBInstances", "Used": db_instances, "Max": 40}]}, {})
        if workgroups:
            self.stubs["redshift-serverless"].add_response("list_workgroups", {"workgroups": []}, {})
            self.stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": [
                {"QuotaName": "Workgroups", "QuotaCode": "L-EXAMPLE", "Value": 25.0}]}, {"ServiceCode": ANY})

    def healthy(self, principal: str = f"arn:aws:iam::{ACCOUNT}:user/alice") -> Account:
        self.allow(principal)
        self.quotas(workgroups=self.parameters.get("WarehouseMode", "serverless") == "serverless")
        return self

    def doctor(self, *args: str, code: int) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("txpipe_cli.aws.client.AwsClient", lambda: self.aws)  # doctor imports it when it runs
            params = [item for key, value in self.parameters.items() for item in ("--param", f"{key}={value}")]
            result = CliRunner().invoke(app, ["doctor", "--target", "aws", *params, *args])
        assert result.exit_code == code, result.output
        for stubber in self.stubs.values():
            stubber.assert_no_pending_responses()
        return result


def user_session(name: str = "alice", region: str = REGION) -> boto3.session.Session:
    """A moto IAM user with its own access key: STS names it as AWS would, arn:aws:iam::<account>:user/<name>."""
    iam = boto3.client("iam", region_name=region)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.session.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                 region_name=region)


def lines(result: Any) -> list[str]:
    return result.stdout.strip().splitlines()


def test_a_healthy_account_passes_every_check_and_only_reads(aws: None) -> None:
    """Credentials, services, permissions, quotas and a free bucket: every line ✓, exit 0; and every call
    the doctor made was a read (nothing created: the bucket is still free)."""
    account = Account(user_session()).healthy()
    output = lines(account.doctor(code=0))
    assert [line.split(":")[0] for line in output] == [
        "✓ credentials", "✓ services", "✓ network", "✓ permissions", "✓ quota", "✓ quota", "✓ quota", "✓ quota",
        "✓ quota", "✓ bucket", "ready to deploy, 0 warnings"]
    assert output[0] == f"✓ credentials: account {ACCOUNT} in {REGION} as arn:aws:iam::{ACCOUNT}:user/alice"
    assert f"{BUCKET} is free: deploy creates it" in output[-2]
    assert "quota: VPCs: 1 taken + 1 for txpipe, of 5" in output[5]  # moto's default VPC
    assert "quota: Lambda concurrent executions: 0 taken + 9 for txpipe, of 1000" in output[4]
    assert all(re.match(r"(Get|Describe|List|Head|Simulate)", call) for call in account.calls), account.calls
    assert "HeadBucket" in account.calls and "SimulatePrincipalPolicy" in account.calls
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No region and no credentials anywhere: no keys, no profile, no config files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_missing_credentials_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere (no keys, no profile, no instance metadata): one ✗ line saying how to
    provide them, exit 1, and nothing else asked."""
    no_aws_configuration(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    result = CliRunner().invoke(app, ["doctor", "--target", "aws"])
    assert result.exit_code == 1, result.output
    assert lines(result) == ["✗ credentials: no AWS credentials configured (run: aws configure, or aws sso login, "
                             "or export AWS_PROFILE=<profile>)"]
    assert "txpipe doctor" not in result.output


def test_missing_region_is_a_blocker_not_aws_global(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials but no region: STS alone would answer from its global endpoint and call the region
    `aws-global`; the doctor says instead that no region is configured and how to set one, and its
    closing line points there too, never back at txpipe doctor."""
    no_aws_configuration(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    result = CliRunner().invoke(app, ["doctor", "--target", "aws"])
    assert result.exit_code == 1, result.output
    hint = "run: export AWS_DEFAULT_REGION=us-east-1, or set region in your AWS profile"
    assert lines(result) == [f"✗ region: no AWS region configured ({hint})"]
    assert result.stderr.strip() == f"error: not ready to deploy: 1 blocker, first region: no AWS region " \
                                    f"configured ({hint})"
    assert "aws-global" not in result.output and "txpipe doctor" not in result.output
    report = json.loads(CliRunner().invoke(app, ["doctor", "--target", "aws", "--json"]).stdout)
    assert (report["region"], report["ready"], report["checks"][0]["status"]) == (None, False, "fail")


def test_a_denied_action_is_a_blocker_that_names_it(aws: None) -> None:
    """One action the simulation denies fails the permissions check, naming the action and its ARN."""
    account = Account(user_session())
    account.allow(f"arn:aws:iam::{ACCOUNT}:user/alice", deny=("cloudformation:CreateChangeSet",))
    account.quotas()
    output = lines(account.doctor(code=1))
    [line] = [line for line in output if line.startswith("✗")]
    assert line.startswith("✗ permissions: 1 of ")
    assert f"cloudformation:CreateChangeSet on arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/txpipe-dev/*" in line
    assert output[-1] == "not ready: 1 blocker (permissions), 0 warnings"


def test_a_caller_that_may_not_simulate_gets_a_warning_not_a_blocker(aws: None) -> None:
    """AccessDenied on iam:SimulatePrincipalPolicy: a ! line saying so, and the doctor still exits 0."""
    account = Account(user_session())
    account.stubs["iam"].add_client_error("simulate_principal_policy", "AccessDenied", http_status_code=403)
    account.quotas()
    output = lines(account.doctor(code=0))
    assert "! permissions: cannot check permissions: iam:SimulatePrincipalPolicy failed (AccessDenied)" in output[3]
    assert output[-1] == "ready to deploy, 1 warning"


def test_an_assumed_role_is_simulated_as_its_role_with_its_path(aws: None) -> None:
    """STS names an assumed role's session; the simulation gets the role's own ARN, path included (GetRole)."""
    iam = boto3.client("iam")
    iam.create_role(RoleName="deployer", Path="/team/", AssumeRolePolicyDocument="{}")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/team/deployer"
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="ci")["Credentials"]
    session = boto3.session.Session(aws_access_key_id=credentials["AccessKeyId"], region_name=REGION,
                                    aws_secret_access_key=credentials["SecretAccessKey"],
                                    aws_session_token=credentials["SessionToken"])
    account = Account(session)
    role = {"Path": "/team/", "RoleName": "deployer", "RoleId": "AROAEXAMPLEEXAMPLE123", "Arn": role_arn,
            "CreateDate": datetime(2026, 1, 1, tzinfo=UTC)}
    account.stubs["iam"].add_response("get_role", {"Role": role}, {"RoleName": "deployer"})
    account.healthy(principal=role_arn)
    output = lines(account.doctor(code=0))
    assert output[0].endswith(f"as arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci")
    assert output[3].startswith(f"✓ permissions: {role_arn} may do all ")


def test_a_bucket_of_another_account_is_a_blocker(aws: None) -> None:
    """S3 answers 403 to HeadBucket (with ExpectedBucketOwner) for the artifacts bucket name: ✗, exit 1."""
    account = Account(user_session(), stub=(*STUBBED, "s3")).healthy()
    account.stubs["s3"].add_client_error("head_bucket", "403", http_status_code=403,
                                         expected_params={"Bucket": BUCKET, "ExpectedBucketOwner": ACCOUNT})
    output = lines(account.doctor(code=1))
    assert output[-2].startswith(f"✗ bucket: {BUCKET} belongs to another account (S3 answers 403)")
    assert output[-1] == "not ready: 1 blocker (bucket), 0 warnings"


def test_our_own_bucket_is_reused(aws: None) -> None:
    """A bucket this account already made under that name (a previous deploy): ✓."""
    session = user_session()
    session.client("s3").create_bucket(Bucket=BUCKET)
    output = lines(Account(session).healthy().doctor(code=0))
    assert output[-2] == f"✓ bucket: {BUCKET} exists and is this account's: deploy reuses it"


def test_a_region_without_a_service_is_a_blocker_unless_the_stack_avoids_it(aws: None) -> None:
    """me-south-1 has no Redshift Serverless (botocore's endpoint data): ✗ with both ways out; deploying
    the provisioned warehouse there needs no Redshift Serverless, so the same check passes."""
    region = "me-south-1"
    account = Account(user_session("alice", region), region).healthy()
    output = lines(account.doctor(code=1))
    assert output[1] == (f"✗ services: {region} does not offer redshift-serverless (choose a region that does "
                         "(AWS_DEFAULT_REGION) or deploy with --param WarehouseMode=provisioned)")
    provisioned = Account(user_session("bob", region), region, {"WarehouseMode": "provisioned"})
    provisioned.healthy(principal=f"arn:aws:iam::{ACCOUNT}:user/bob")
    output = lines(provisioned.doctor(code=0))
    assert output[1].startswith(f"✓ services: {region} offers all ")
    assert not any("Redshift Serverless" in line for line in output)


def test_json_output_shape(aws: None) -> None:
    """--json prints one object: target, stage, region, account, arn, ready, counts and every check."""
    account = Account(user_session()).healthy()
    expected = sum(len(actions) for actions in account.groups().values())
    report = json.loads(account.doctor("--json", "--stage", "dev", code=0).stdout)
    assert set(report) == {"target", "stage", "region", "account", "arn", "ready", "blockers", "warnings", "checks"}
    assert (report["target"], report["region"], report["account"], report["ready"]) == ("aws", REGION, ACCOUNT, True)
    assert [c["check"] for c in report["checks"]][:4] == ["credentials", "services", "network", "permissions"]
    for check in report["checks"]:
        assert set(check) == {"check", "status", "reason", "fix", "details"} and check["status"] == "ok"
    assert report["checks"][3]["details"] == {"principal": f"arn:aws:iam::{ACCOUNT}:user/alice",
                                              "checked": expected, "denied": []}


def test_a_quota_used_up_is_a_blocker_and_near_the_limit_a_warning(aws: None) -> None:
    """Five VPCs of five (moto's default and four more) leave none for the stack: ✗; 10 unreserved Lambda
    executions (a new account's) against txpipe's 9 at once: !."""
    ec2 = boto3.client("ec2")
    for i in range(4):
        ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")
    account = Account(user_session())
    account.allow(f"arn:aws:iam::{ACCOUNT}:user/alice")
    account.quotas(unreserved=10)
    output = lines(account.doctor(code=1))
    assert "✗ quota: VPCs: 5 taken + 1 for txpipe, of 5: used up" in output[5]
    assert "! quota: Lambda concurrent executions: 990 taken + 9 for txpipe, of 1000: near the limit" in output[4]


def test_elastic_ips_are_counted_when_the_stack_allocates_some(aws: None) -> None:
    """A template with a NAT gateway's Elastic IP: moto's 5 allowed, 5 allocated: the EIP quota is ✗."""
    ec2 = boto3.client("ec2")
    for _ in range(5):
        ec2.allocate_address(Domain="vpc")
    template = loads(TEMPLATE)
    template["Resources"]["NatAddress"] = {"Type": "AWS::EC2::EIP"}
    account = Account(user_session())
    account.quotas()
    report = Report("dev", REGION, ACCOUNT)
    [check] = [c for c in Doctor(account.aws, "dev", template=template)._quotas(report) if "Elastic" in c.check]
    assert (check.status, check.reason) == ("fail", "5 taken + 1 for txpipe, of 5: used up")


def test_the_local_target_is_a_usage_error() -> None:
    """The doctor checks an AWS account; asked about the local target it exits 2 and says how to call it."""
    result = CliRunner().invoke(app, ["doctor", "--target", "local"])
    assert result.exit_code == 2 and "txpipe doctor --target aws" in result.output


def test_the_template_reader_agrees_with_cfn_lint() -> None:
    """The doctor's reading of the resolved template gives cfn-lint's types, conditions and defaults;
    every resource type has a service, and every permission's condition is one of the template's."""
    from infra import name_api_deployments, resolved_template

    parsed, read = name_api_deployments(loads(TEMPLATE)), Template.of(resolved_template())
    assert read.resources == {name: (r["Type"], r.get("Condition")) for name, r in parsed["Resources"].items()}
    assert read.defaults == {name: str(p["Default"]) for name, p in parsed["Parameters"].items() if "Default" in p}
    evaluated = 0
    for name, expression in parsed["Conditions"].items():
        [(function, arguments)] = expression.items()
        if function == "Fn::Equals" and isinstance(arguments[0], dict) and set(arguments[0]) == {"Ref"}:
            for value in (arguments[1], f"not-{arguments[1]}"):
                assert read.holds(name, {arguments[0]["Ref"]: value}) == (value == arguments[1]), name
            evaluated += 1
    assert evaluated >= 3  # CreateNetwork, UseServerless, UseProvisioned
    assert {kind.rsplit("::", 1)[0] for kind, _ in read.resources.values()} <= set(SERVICE_OF)
    assert {p.when for p in OPERATOR_PERMISSIONS if p.when} <= set(parsed["Conditions"])


def test_every_action_the_readme_lists_is_in_the_doctors_list() -> None:
    """README's "IAM permissions the operator needs" and OPERATOR_PERMISSIONS stay in step: each action
    the README names (`service:Action`, then bare actions of that service) matches one in the data."""
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("**IAM permissions the operator needs:**"):].split("\n\n")[0]
    known = [action for p in OPERATOR_PERMISSIONS for action in p.actions]
    service, named = "", []
    for token in re.findall(r"`([^`]+)`", paragraph):
        if "txpipe" in token:
            continue  # a resource, not an action
        service, action = token.split(":", 1) if ":" in token else (service, token)
        for variant in {re.sub(r"\((\w+)\)", "", action), re.sub(r"\((\w+)\)", r"\1", action)}:
            named.append(f"{service}:{variant}")
    assert len(named) > 15
    assert [n for n in named if not fnmatch.filter(known, n)] == []


def test_an_existing_vpc_without_routes_or_azs_is_a_blocker(aws: None) -> None:
    """--param ExistingVpcId: the subnets' AZs and routes are read (describe calls only); each problem is a ✗
    line naming the service, who calls it and the fix; the same VPC with a NAT route in three AZs passes."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"172.31.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
               ["Subnet"]["SubnetId"] for i, az in enumerate("abc")]
    parameters = {"ExistingVpcId": vpc, "ExistingSubnetIds": ",".join(subnets)}
    result = Account(user_session("alice"), REGION, parameters).healthy().doctor(code=1)
    assert "txpipe doctor" not in result.output  # each way out is the blocker's own, not the command just run
    output = lines(result)
    network = [line for line in output if line.startswith("✗ network")]
    assert len(network) == 4 and any("secretsmanager (called by ops)" in line for line in network), network
    assert output[-1].startswith("not ready: 4 blockers (network")
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.100.0/24")["Subnet"]["SubnetId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0",
                     NatGatewayId=nat["NatGateway"]["NatGatewayId"])
    output = lines(Account(user_session("bob"), REGION, parameters).healthy(
        principal=f"arn:aws:iam::{ACCOUNT}:user/bob").doctor(code=0))
    assert output[2] == f"✓ network: {vpc}: 3 subnets, each with a route to every service the functions call"

"""`txpipe doctor --target aws`: a read-only preflight of an AWS account before the first deploy.

The checks, in order; each ends ok, warn (deploy may still work) or fail (a blocker):

1. credentials - a region and credentials in the session (else a `region` or `credentials` blocker),
                 then sts:GetCallerIdentity: the account and the caller's ARN. Without a region or an
                 identity nothing else can be asked, so the doctor stops there.
2. services    - the region offers every service of the stack's resource types (infra/template.yaml
                 under deploy's --param) and deploy's own; botocore's endpoint data answers, offline.
3. network     - an existing VPC (--param ExistingVpcId): subnets in the AZs the warehouse needs, and a route
                 from them to every service the functions call (network.py; deploy checks the same first).
4. permissions - iam:SimulatePrincipalPolicy for the caller's principal (an assumed role's role, not its
                 session) over OPERATOR_PERMISSIONS, each on the ARN deploy touches. A caller that may
                 not simulate gets a warning, not a blocker.
5. quotas      - what the stack adds against each quota: Lambda concurrency, VPCs, Elastic IPs, RDS
                 instances, Redshift Serverless workgroups. Used up: a blocker; over NEAR: a warning.
6. bucket      - the artifacts bucket name txpipe-artifacts-<account>-<region> is free or ours.

Only get, describe, list, head and simulate calls: the doctor never creates or changes anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from txpipe_cli.aws import network
from txpipe_cli.aws.client import AwsClient, AwsConfigError
from txpipe_cli.aws.deployer import stack_name
from txpipe_cli.aws.permissions import OPERATOR_PERMISSIONS
from txpipe_cli.aws.resolve import Resolver
from txpipe_cli.errors import TxpipeError

NEAR = 0.8  # a quota more than this full after deploy is a warning
# CloudFormation resource-type prefix -> boto3 service name (its endpoint data's name).
SERVICE_OF = {"AWS::ApiGateway": "apigateway", "AWS::CloudWatch": "cloudwatch", "AWS::EC2": "ec2", "AWS::IAM": "iam",
              "AWS::Lambda": "lambda", "AWS::Logs": "logs", "AWS::RDS": "rds", "AWS::Redshift": "redshift",
              "AWS::RedshiftServerless": "redshift-serverless", "AWS::Scheduler": "scheduler",
              "AWS::S3": "s3", "AWS::SecretsManager": "secretsmanager", "AWS::SQS": "sqs"}
GLOBAL_SERVICES = frozenset({"iam"})  # one endpoint for the partition: never missing from a region
DEPLOY_SERVICES = ("cloudformation", "s3", "sts")  # what deploy calls itself, beside the stack's
OTHERWISE = {"redshift-serverless": "or deploy with --param WarehouseMode=provisioned"}


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # ok | warn | fail
    reason: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    stage: str
    region: str | None = None
    account: str | None = None
    arn: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def blockers(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        return {"target": "aws", "stage": self.stage, "region": self.region, "account": self.account,
                "arn": self.arn, "ready": not self.blockers, "blockers": len(self.blockers),
                "warnings": len(self.warnings), "checks": [asdict(c) for c in self.checks]}


@dataclass(frozen=True)
class Template:
    """What the doctor needs of the template (the resolved one deploy sends, infra/template.json): resource
    types and conditions, parameter defaults, and the conditions evaluated as deploy's pricing does
    (aws/resolve.py)."""

    resources: dict[str, tuple[str, str | None]]  # logical id -> (type, condition)
    defaults: dict[str, str]
    source: dict[str, Any]  # the template itself

    @classmethod
    def of(cls, template: dict[str, Any]) -> Template:
        resources = {name: (r["Type"], r.get("Condition")) for name, r in template["Resources"].items()}
        defaults = {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}
        return cls(resources, defaults, template)

    def holds(self, condition: str | None, parameters: dict[str, str]) -> bool:
        """Whether a condition holds under these parameters (no condition: always)."""
        return condition is None or Resolver(self.source, parameters).condition(condition)

    def types(self, parameters: dict[str, str]) -> list[str]:
        """The resource types the stack creates under these parameters, one entry per resource."""
        return [kind for kind, condition in self.resources.values() if self.holds(condition, parameters)]


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


def _pages(call: Callable[..., dict[str, Any]], key: str, marker: str = "NextToken", **kwargs: Any) -> Iterator[Any]:
    while True:
        page = call(**kwargs)
        yield from page.get(key, [])
        if not page.get(marker):
            return
        kwargs[marker] = page[marker]


@functools.cache
def _default_regions(service: str, partition: str) -> list[str]:
    import botocore.session  # the endpoint data boto3 ships; no credentials, no network

    return botocore.session.get_session().get_available_regions(service, partition_name=partition)


class Doctor:
    def __init__(self, aws: AwsClient, stage: str, parameters: dict[str, str] | None = None,
                 template: dict[str, Any] | None = None,
                 regions: Callable[[str, str], list[str]] = _default_regions) -> None:
        if template is None:
            from infra import resolved_template

            template = resolved_template()
        self.aws, self.stage, self.parameters = aws, stage, dict(parameters or {})
        self.template, self.regions = Template.of(template), regions
        self.types = self.template.types(self.parameters)

    def run(self) -> Report:
        report = Report(self.stage)
        identity = self._identity(report)
        if identity is None:
            return report  # no region or no identity: nothing else can be asked
        for check in (self._services, self._network, self._permissions, self._quotas, self._bucket):
            report.checks.extend(check(report))
        return report

    def _identity(self, report: Report) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            report.region = self.aws.region
            identity = self.aws.client("sts").get_caller_identity()
        except AwsConfigError as exc:  # no region (not STS's `aws-global`), or no credentials: which, and how
            report.checks.append(Check(exc.missing[0], "fail", exc.reason, exc.hint))
        except TxpipeError as exc:
            report.checks.append(Check("credentials", "fail", exc.reason, exc.hint))
        except NoCredentialsError:
            report.checks.append(Check("credentials", "fail", "no AWS credentials found", (
                "configure a profile with aws configure or aws sso login, or export AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY")))
        except ClientError as exc:  # expired or invalid keys, a revoked session
            report.checks.append(Check("credentials", "fail", f"AWS refused the credentials: {_error_code(exc)}: "
                                       f"{exc.response['Error'].get('Message', '')}", "refresh or replace them"))
        except BotoCoreError as exc:
            report.checks.append(Check("credentials", "fail", f"cannot reach STS: {exc}", "check network and region"))
        else:
            report.account, report.arn = identity["Account"], identity["Arn"]
            report.checks.append(Check("credentials", "ok", f"account {report.account} in {report.region} as "
                                       f"{report.arn}", details={"user_id": identity.get("UserId")}))
            return identity
        return None

    def _services(self, report: Report) -> list[Check]:
        unmapped = sorted({t for t in self.types if t.rsplit("::", 1)[0] not in SERVICE_OF})
        if unmapped:  # a new resource type: its service must be named above before it can be checked
            return [Check("services", "warn", f"no service known for {', '.join(unmapped)}",
                          "add its prefix to SERVICE_OF in txpipe_cli/aws/doctor.py")]
        needed = {SERVICE_OF[t.rsplit("::", 1)[0]] for t in self.types} | set(DEPLOY_SERVICES)
        partition = self.aws.client("sts").meta.partition
        missing = sorted(s for s in needed - GLOBAL_SERVICES if report.region not in self.regions(s, partition))
        details = {"services": sorted(needed), "missing": missing}
        if not missing:
            return [Check("services", "ok", f"{report.region} offers all {len(needed)} services the stack uses",
                          details=details)]
        hints = [OTHERWISE[s] for s in missing if s in OTHERWISE]
        return [Check("services", "fail", f"{report.region} does not offer {', '.join(missing)}",
                      " ".join(["choose a region that does (AWS_DEFAULT_REGION)", *hints]), details)]

    def _network(self, report: Report) -> list[Check]:
        """An existing VPC (--param ExistingVpcId): its subnets span the AZs the warehouse needs and give every
        function a route to what it calls (aws/network.py, the same check deploy makes first)."""
        vpc = self.parameters.get("ExistingVpcId")
        if not vpc:
            return [Check("network", "ok", "the stack makes its own VPC, with endpoints for what the functions call")]
        warehouse = self.parameters.get("WarehouseMode", "serverless")
        subnets = self.parameters.get("ExistingSubnetIds", "").split(",")
        try:
            network.check_subnet_ids(subnets, warehouse)
            problems = network.existing_vpc_problems(self.aws.client("ec2"), report.region or "", vpc, subnets,
                                                     warehouse)
        except TxpipeError as exc:
            return [Check("network", "fail", exc.reason, exc.hint)]
        except Exception as exc:  # noqa: BLE001 - a read it may not make: a warning, as for the other checks
            return [Check("network", "warn", f"cannot read VPC {vpc} ({_error_code(exc)})",
                          "allow ec2:DescribeSubnets, DescribeRouteTables and DescribeVpcEndpoints")]
        if problems:
            return [Check("network", "fail", problem, "add the route or endpoint named, or choose other subnets")
                    for problem in problems]
        return [Check("network", "ok", f"{vpc}: {len(set(subnets) - {''})} subnets, each with a route to every "
                      "service the functions call")]

    def principal(self, arn: str) -> str | None:
        """The IAM principal behind a caller's ARN, as SimulatePrincipalPolicy takes it: an assumed role's
        session becomes its role, with the role's path (from iam:GetRole where allowed)."""
        parts = arn.split(":", 5)
        if len(parts) != 6:
            return None
        _, partition, service, _, account, resource = parts
        if service == "iam" and resource.split("/")[0] in ("user", "role"):
            return arn
        if service == "sts" and resource.startswith("assumed-role/"):
            role = resource.split("/")[1]
            try:
                return self.aws.client("iam").get_role(RoleName=role)["Role"]["Arn"]
            except Exception:  # noqa: BLE001 - GetRole denied: a role without a path is the common case
                return f"arn:{partition}:iam::{account}:role/{role}"
        return None  # the account root, a federated user: nothing to simulate

    def permission_groups(self, report: Report) -> dict[str, list[str]]:
        """The actions deploy needs under these parameters, by the resource ARN they act on."""
        names = {"p": self.aws.client("sts").meta.partition, "r": report.region, "a": report.account,
                 "stack": stack_name(self.stage), "bucket": self.bucket_name(report)}
        groups: dict[str, list[str]] = {}
        for permission in OPERATOR_PERMISSIONS:
            if self.template.holds(permission.when, self.parameters):
                actions = groups.setdefault(permission.resource.format(**names), [])
                actions += [a for a in permission.actions if a not in actions]
        return groups

    def _permissions(self, report: Report) -> list[Check]:
        from botocore.exceptions import BotoCoreError, ClientError

        principal = self.principal(report.arn or "")
        if principal is None:
            return [Check("permissions", "warn", f"{report.arn} is not an IAM user or role, so its permissions "
                          "cannot be simulated", "deploy as an IAM user or role (not the account root)")]
        iam, denied, checked = self.aws.client("iam"), [], 0
        region = [{"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": [report.region],
                   "ContextKeyType": "string"}]
        try:
            for resource, actions in self.permission_groups(report).items():
                where = {} if resource == "*" else {"ResourceArns": [resource]}
                for result in _pages(iam.simulate_principal_policy, "EvaluationResults", marker="Marker",
                                     PolicySourceArn=principal, ActionNames=actions, ContextEntries=region, **where):
                    checked += 1
                    if result["EvalDecision"] != "allowed":
                        denied.append(f"{result['EvalActionName']} on {resource}")
        except (ClientError, BotoCoreError) as exc:
            return [Check("permissions", "warn", f"cannot check permissions: iam:SimulatePrincipalPolicy failed "
                          f"({_error_code(exc)})", f"allow it on {principal}, or compare its policies with the "
                          "README's list by hand", {"principal": principal})]
        details = {"principal": principal, "checked": checked, "denied": denied}
        if denied:
            more = f" and {len(denied) - 3} more" if len(denied) > 3 else ""
            return [Check("permissions", "fail", f"{len(denied)} of {checked} actions deploy needs are denied to "
                          f"{principal}: {'; '.join(denied[:3])}{more}",
                          "grant them: README.md lists them under IAM permissions the operator needs", details)]
        return [Check("permissions", "ok", f"{principal} may do all {checked} actions deploy and the daily "
                      "commands need", details=details)]

    def _quotas(self, report: Report) -> list[Check]:
        count = self.types.count
        checks = [self._quota("Lambda concurrent executions", self._lambda_concurrency)]
        if count("AWS::EC2::VPC"):
            checks.append(self._quota("VPCs", lambda: (self._quota_value("vpc", "L-F678F1CE"),
                                                       len(list(_pages(self.aws.client("ec2").describe_vpcs,
                                                                       "Vpcs"))), count("AWS::EC2::VPC"))))
        eips = count("AWS::EC2::EIP") + count("AWS::EC2::NatGateway")
        checks.append(self._quota("Elastic IPs", self._elastic_ips) if eips else
                      Check("quota: Elastic IPs", "ok", "the stack allocates none (no NAT gateway)"))
        if count("AWS::RDS::DBInstance"):
            checks.append(self._quota("RDS DB instances", self._rds_instances))
        if count("AWS::RedshiftServerless::Workgroup"):
            checks.append(self._quota("Redshift Serverless workgroups", self._workgroups))
        return checks

    def _quota(self, name: str, read: Callable[[], tuple[float | None, int, int]]) -> Check:
        """One quota: read() gives (limit, taken now, what the stack adds); a limit that cannot be read is
        a warning, never a guess."""
        from botocore.exceptions import BotoCoreError, ClientError

        name, console = f"quota: {name}", "in the Service Quotas console"
        try:
            limit, used, adds = read()
        except (ClientError, BotoCoreError) as exc:
            return Check(name, "warn", f"could not read it ({_error_code(exc)})", f"check it {console}")
        details, after = {"limit": limit, "used": used, "adds": adds}, f"{used} taken + {adds} for txpipe"
        if limit is None:
            return Check(name, "warn", f"{after}; the quota could not be read", f"check it {console}", details)
        after += f", of {limit:g}"
        if used + adds > limit:
            return Check(name, "fail", f"{after}: used up", f"free some, or request an increase {console}", details)
        if used + adds > NEAR * limit:
            return Check(name, "warn", f"{after}: near the limit", f"consider an increase {console}", details)
        return Check(name, "ok", after, details=details)

    def _quota_value(self, service: str, code: str | None = None, name: str = "") -> float | None:
        """A quota's applied value, else its AWS default (Service Quotas lists some only so), by its code or,
        where txpipe pins no code, by a pattern of its name; None when Service Quotas does not know it."""
        from botocore.exceptions import ClientError

        quotas = self.aws.client("service-quotas")
        for call in ((quotas.get_service_quota, quotas.get_aws_default_service_quota) if code else
                     (quotas.list_service_quotas, quotas.list_aws_default_service_quotas)):
            try:
                found = [call(ServiceCode=service, QuotaCode=code)["Quota"]] if code else [
                    q for q in _pages(call, "Quotas", ServiceCode=service) if re.fullmatch(name, q["QuotaName"], re.I)]
            except ClientError as exc:
                if _error_code(exc) != "NoSuchResourceException":
                    raise
            else:
                if found:
                    return float(found[0]["Value"])
        return None

    def _lambda_concurrency(self) -> tuple[float | None, int, int]:
        """Unreserved concurrency against what the pipeline may run at once: the store's event source
        mapping at its MaximumConcurrency, and one each for the other functions."""
        limits = self.aws.client("lambda").get_account_settings()["AccountLimit"]
        store = int({**self.template.defaults, **self.parameters}["StoreMaxConcurrency"])
        functions = self.types.count("AWS::Lambda::Function")
        reserved = limits["ConcurrentExecutions"] - limits["UnreservedConcurrentExecutions"]  # by other functions
        return float(limits["ConcurrentExecutions"]), reserved, store + max(functions - 1, 0)

    def _elastic_ips(self) -> tuple[float | None, int, int]:
        ec2 = self.aws.client("ec2")
        attributes = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])["AccountAttributes"]
        limit = float(attributes[0]["AttributeValues"][0]["AttributeValue"]) if attributes else None
        adds = self.types.count("AWS::EC2::EIP") + self.types.count("AWS::EC2::NatGateway")
        return limit, len(ec2.describe_addresses().get("Addresses", [])), adds

    def _rds_instances(self) -> tuple[float | None, int, int]:
        quotas = self.aws.client("rds").describe_account_attributes()["AccountQuotas"]
        instances = next((q for q in quotas if q["AccountQuotaName"] == "DBInstances"), None)
        adds = self.types.count("AWS::RDS::DBInstance")
        return (float(instances["Max"]), int(instances["Used"]), adds) if instances else (None, 0, adds)

    def _workgroups(self) -> tuple[float | None, int, int]:
        used = len(list(_pages(self.aws.client("redshift-serverless").list_workgroups, "workgroups",
                               marker="nextToken")))
        limit = self._quota_value("redshift-serverless", name=r"workgroups?( per account)?")
        return limit, used, self.types.count("AWS::RedshiftServerless::Workgroup")

    def bucket_name(self, report: Report) -> str:
        return f"txpipe-artifacts-{report.account}-{report.region}"  # as txpipe_cli.aws.deployer names it

    def _bucket(self, report: Report) -> list[Check]:
        from botocore.exceptions import ClientError

        bucket, elsewhere = self.bucket_name(report), "delete it there, or deploy in its region"
        try:
            # ExpectedBucketOwner: S3 answers 403 for a bucket of another account, even a readable one.
            found = self.aws.client("s3").head_bucket(Bucket=bucket, ExpectedBucketOwner=report.account)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchBucket"):
                return [Check("bucket", "ok", f"{bucket} is free: deploy creates it", details={"bucket": bucket})]
            reason, fix = {"301": ("exists in another region", elsewhere), "403": (
                "belongs to another account (S3 answers 403), or this caller may not read it",
                "txpipe names its bucket after account and region: if it is not yours, deploy in another region; "
                "if it is, allow s3:ListBucket on it")}.get(code, (f"cannot be checked: {code}", "try again"))
            return [Check("bucket", "fail", f"{bucket} {reason}", fix, {"bucket": bucket, "code": code})]
        if found.get("BucketRegion", report.region) != report.region:  # boto3 followed S3's redirect
            return [Check("bucket", "fail", f"{bucket} exists in {found['BucketRegion']}", elsewhere,
                          {"bucket": bucket})]
        return [Check("bucket", "ok", f"{bucket} exists and is this account's: deploy reuses it",
                      details={"bucket": bucket})]

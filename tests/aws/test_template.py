"""infra/template.yaml: linted by cfn-lint and checkov, and read for the properties the issue asks for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import loads

from tests.support.template import TEMPLATE, resources

# Actions AWS allows on "*" only (no resource-level permissions): each needs a reason in the template.
STAR_RESOURCE_ACTIONS = {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
                         "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return loads(TEMPLATE.read_text())


def checkov_binary() -> str:
    tools = Path(os.environ.get("TXPIPE_TOOLS", Path.home() / ".cache" / "txpipe" / "tools"))
    candidates = [os.environ.get("TXPIPE_CHECKOV", ""), str(tools / "checkov" / "bin" / "checkov"),
                  shutil.which("checkov") or ""]
    for candidate in filter(None, candidates):
        if Path(candidate).exists():
            return candidate
    pytest.fail("checkov is not installed: run `bash scripts/install.sh --dev`")


def test_cfn_lint_reports_nothing() -> None:
    """cfn-lint finds no error (and no warning) in the template."""
    # The cfn-lint installed beside this interpreter (the virtualenv's), not whichever is first on PATH.
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    proc = subprocess.run([str(cfn_lint) if cfn_lint.exists() else "cfn-lint", str(TEMPLATE)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_passes() -> None:
    """checkov finds no failed check; every skipped one is skipped in the template itself."""
    proc = subprocess.run([checkov_binary(), "-f", str(TEMPLATE), "--framework", "cloudformation", "--quiet",
                           "--compact", "--skip-download", "-o", "json"],
                          capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 50


def test_every_checkov_skip_has_a_reason(template: dict[str, Any]) -> None:
    """Each checkov skip in resource metadata carries a written comment."""
    skips = [(name, skip) for name, r in template["Resources"].items()
             for skip in (r.get("Metadata") or {}).get("checkov", {}).get("skip", [])]
    assert skips
    for name, skip in skips:
        assert skip["id"].startswith("CKV"), name
        assert len(skip.get("comment", "")) > 20, f"{name}: {skip['id']} has no reason"


def test_no_star_action_and_star_resource_only_where_aws_requires(template: dict[str, Any]) -> None:
    """Least privilege: no "*" action anywhere; "*" resources only for actions that support nothing else."""
    roles = resources(template, "AWS::IAM::Role")
    assert len(roles) == 7  # five functions, the scheduler and Redshift's COPY: one role each
    for name, role in roles.items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _statements(policy):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), name
                if statement["Resource"] == "*":
                    assert set(actions) <= STAR_RESOURCE_ACTIONS, (name, actions)


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's statements, both branches of a conditional (Fn::If) one included."""
    found = []
    for statement in policy["PolicyDocument"]["Statement"]:
        found += statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
    return [s for s in found if s != {"Ref": "AWS::NoValue"}]


def _role_of(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for p in template["Resources"][role]["Properties"]["Policies"] for s in _statements(p)]


def test_only_ops_holds_an_admin_secret_the_others_log_in_with_iam(template: dict[str, Any]) -> None:
    """store and sync reach RDS as their own users with IAM tokens, sync and refresh reach Redshift with
    their role's temporary credentials; no function but ops may read an admin secret or has one in its env."""
    assert template["Resources"]["OltpDatabase"]["Properties"]["EnableIAMDatabaseAuthentication"] is True
    for function in ("IngestFunction", "StoreFunction", "SyncFunction", "RefreshFunction", "OpsFunction"):
        actions = {a for s in _role_of(template, function)
                   for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        secrets = {k: v for k, v in variables.items() if k.endswith("_SECRET")}
        if function == "OpsFunction":
            assert "secretsmanager:GetSecretValue" in actions
            assert all(isinstance(v, dict) for v in secrets.values())  # the admin secrets' ARNs
            assert variables["TXPIPE_WAREHOUSE_SYNC_USER"] == {"Fn::Sub": "IAMR:${SyncRole}"}
        else:
            assert "secretsmanager:GetSecretValue" not in actions, function
            assert all(isinstance(v, str) and v.startswith("iam:") for v in secrets.values()), (function, secrets)
    user_of = {"StoreFunction": "txpipe_store", "SyncFunction": "txpipe_sync"}
    for function, user in user_of.items():
        [connect] = [s for s in _role_of(template, function) if s["Action"] == "rds-db:connect"]
        assert connect["Resource"]["Fn::Sub"].endswith(f":dbuser:${{OltpDatabase.DbiResourceId}}/{user}")
    for function in ("SyncFunction", "RefreshFunction"):
        actions = {s["Action"] for s in _role_of(template, function) if isinstance(s["Action"], str)}
        assert {"redshift-serverless:GetCredentials", "redshift:GetClusterCredentialsWithIAM"} <= actions


def test_functions_have_log_groups_roles_and_the_vpc_where_needed(template: dict[str, Any]) -> None:
    """Five Python 3.12 functions, each with its own role and a log group with retention; all but ingest in the VPC."""
    functions = resources(template, "AWS::Lambda::Function")
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == [
        f"lambdas.{name}.handler" for name in ("ingest", "ops", "refresh", "store", "sync")]
    log_groups = resources(template, "AWS::Logs::LogGroup")
    assert all("RetentionInDays" in g["Properties"] for g in log_groups.values())
    roles = [f["Properties"]["Role"] for f in functions.values()]
    assert len({json.dumps(r) for r in roles}) == 5
    for name, function in functions.items():
        assert function["Properties"]["Runtime"] == "python3.12"
        assert ("VpcConfig" in function["Properties"]) == (name != "IngestFunction"), name


def test_queue_event_source_and_api(template: dict[str, Any]) -> None:
    """Visibility >= 6x the store timeout, a DLQ, partial batch failures, bounded concurrency, an API key."""
    queue = template["Resources"]["OrdersQueue"]["Properties"]
    store = template["Resources"]["StoreFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * store["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1
    assert queue["SqsManagedSseEnabled"] is True
    mapping = template["Resources"]["StoreEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in mapping["ScalingConfig"]
    assert template["Resources"]["OrdersPostMethod"]["Properties"]["ApiKeyRequired"] is True
    assert "Throttle" in template["Resources"]["OrdersUsagePlan"]["Properties"]


def test_databases_are_private_and_encrypted(template: dict[str, Any]) -> None:
    """RDS and Redshift are encrypted and not public."""
    rds = template["Resources"]["OltpDatabase"]["Properties"]
    assert rds["StorageEncrypted"] is True and rds["PubliclyAccessible"] is False
    workgroup = template["Resources"]["WarehouseWorkgroup"]["Properties"]
    assert workgroup["PubliclyAccessible"] is False
    cluster = template["Resources"]["WarehouseCluster"]["Properties"]
    assert cluster["Encrypted"] is True and cluster["PubliclyAccessible"] is False


def test_admin_passwords_are_made_and_rotated_by_aws(template: dict[str, Any]) -> None:
    """RDS and the provisioned cluster keep their admin passwords in secrets of their own, which AWS
    rotates; no password of theirs is in the template, and no rotation code or schedule of ours is."""
    rds = template["Resources"]["OltpDatabase"]["Properties"]
    assert rds["ManageMasterUserPassword"] is True and "MasterUserPassword" not in rds
    cluster = template["Resources"]["WarehouseCluster"]["Properties"]
    assert cluster["ManageMasterPassword"] is True and "MasterUserPassword" not in cluster
    assert "resolve:" not in json.dumps([rds, cluster])
    assert not resources(template, "AWS::SecretsManager::RotationSchedule")
    assert not resources(template, "AWS::SecretsManager::SecretTargetAttachment")
    namespace = template["Resources"]["WarehouseNamespace"]["Properties"]
    assert namespace["ManageAdminPassword"] is True and "AdminUserPassword" not in namespace
    assert not resources(template, "AWS::SecretsManager::Secret")  # no secret of ours at all


def test_ops_reads_the_secrets_aws_manages(template: dict[str, Any]) -> None:
    """The ops function is told each admin secret's ARN (RDS's and the cluster's by their documented
    attributes) and may read exactly those."""
    oltp = {"Fn::GetAtt": ["OltpDatabase", "MasterUserSecret.SecretArn"]}
    cluster = {"Fn::GetAtt": ["WarehouseCluster", "MasterPasswordSecretArn"]}
    # Serverless: the namespace is named and ops asks it for its secret (no ARN attribute exists).
    warehouse = {"Fn::If": ["UseServerless", {"Fn::Sub": "redshift-serverless:namespace/txpipe-${Stage}"}, cluster]}
    variables = template["Resources"]["OpsFunction"]["Properties"]["Environment"]["Variables"]
    assert (variables["TXPIPE_OLTP_SECRET"], variables["TXPIPE_WAREHOUSE_SECRET"]) == (oltp, warehouse)
    statements = _role_of(template, "OpsFunction")
    [read] = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert read["Resource"][0] == oltp and read["Resource"][1]["Fn::If"][2] == cluster
    assert read["Resource"][1]["Fn::If"][1]["Fn::Sub"].endswith(":secret:redshift!*")
    [lookup] = [s for s in statements if s["Action"] == "redshift-serverless:GetNamespace"]
    assert lookup["Resource"] == {"Fn::GetAtt": ["WarehouseNamespace", "Namespace.NamespaceArn"]}
    outputs = template["Outputs"]
    assert (outputs["OltpSecretArn"]["Value"], outputs["WarehouseSecretArn"]["Value"]) == (oltp, warehouse)


def test_schedules_alarms_and_outputs(template: dict[str, Any]) -> None:
    """Sync every N minutes, refresh daily in a time zone, three alarms, and the outputs operators need."""
    schedules = resources(template, "AWS::Scheduler::Schedule")
    refresh = schedules["RefreshSchedule"]["Properties"]
    assert refresh["ScheduleExpressionTimezone"] == {"Ref": "RefreshTimezone"}
    assert template["Parameters"]["RefreshCron"]["Default"] == "cron(0 2 * * ? *)"
    alarms = {r["Properties"]["MetricName"] for r in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert alarms == {"ApproximateNumberOfMessagesVisible", "Errors", "OldestPendingSeconds"}
    assert {"ApiUrl", "SyncFunctionName", "OpsFunctionName", "OltpSecretArn", "WarehouseSecretArn"} <= set(
        template["Outputs"])

"""`txpipe deploy/status/sync-now/report/destroy --target aws` against a moto server.

As an operator would run them: a moto server on 127.0.0.1 and AWS_ENDPOINT_URL
pointing at it; nothing reaches AWS. moto runs Lambda without Docker here, so an
invocation answers with results queued through moto's own lambda-simple API.
Known moto gaps: its CloudFormation skips Secrets Manager, Redshift Serverless,
Scheduler, CloudWatch alarms, API Gateway stages and API keys (they are planned
but not created), and it cannot delete a VPC endpoint, so a stack that created
its own VPC cannot be deleted there: the apply tests use an existing VPC
(ExistingVpcId/ExistingSubnetIds), and the plan test covers the created network.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from lambdas.core.db import read_secret
from lambdas.core.defaults import MAX_RECEIVE_COUNT
from txpipe_cli.app import app
from txpipe_cli.aws.package import compile_template

runner = CliRunner()
STAGE = "ci"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        _teach_moto_dbi_resource_id(mp)
        _teach_moto_getatt_of_skipped_resources(mp)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # No Docker here: invocations answer queued results (invocations_answer). Set once, before anything
        # is created, because moto keeps the functions of each mode in a backend of their own.
        requests.post(f"{url}/moto-api/config", json={"lambda": {"use_docker": False}},
                      timeout=10).raise_for_status()
        yield url
        server.stop()


def _teach_moto_getatt_of_skipped_resources(mp: pytest.MonkeyPatch) -> None:
    """moto skips the resource types it does not model (Redshift Serverless among them) but then refuses a
    Fn::GetAtt of one; here such a GetAtt yields a placeholder, as a Ref of one already does. A GetAtt of a
    resource the template lacks altogether is still caught, by cfn-lint (tests/aws/test_template.py)."""
    from moto.cloudformation import parsing

    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and "Fn::GetAtt" in resource_json:
            name, attribute = resource_json["Fn::GetAtt"][:2]
            if resources_map.get(name) is None:
                return f"{name}.{attribute}"
        return original(resource_json, resources_map)

    mp.setattr(parsing, "clean_json", clean_json)


def _teach_moto_dbi_resource_id(mp: pytest.MonkeyPatch) -> None:
    """moto's CloudFormation lacks two documented attributes of AWS::RDS::DBInstance that the template uses
    (cfn-lint checks both are real): DbiResourceId (the IAM database login policy names it) and
    MasterUserSecret.SecretArn (the ops function reads that secret), and it ignores the
    ManageMasterUserPassword property, which its RDS API does model (a managed secret in its Secrets
    Manager). Taught here, for this server only."""
    from moto.rds.models import DBInstance

    attributes = {"DbiResourceId": lambda db: db.dbi_resource_id,
                  "MasterUserSecret.SecretArn": lambda db: db.master_user_secret.secret_arn}
    has, get = DBInstance.has_cfn_attr.__func__, DBInstance.get_cfn_attribute
    create = DBInstance.create_from_cloudformation_json.__func__

    def create_managing_its_password(cls: type, name: str, resource: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        database = create(cls, name, resource, *args, **kwargs)
        if str(resource["Properties"].get("ManageMasterUserPassword")).lower() == "true":
            database.update(manage_master_user_password=True)  # as ModifyDBInstance does in moto
        return database

    mp.setattr(DBInstance, "has_cfn_attr", classmethod(lambda cls, attr: attr in attributes or has(cls, attr)))
    mp.setattr(DBInstance, "get_cfn_attribute",
               lambda self, attr: attributes[attr](self) if attr in attributes else get(self, attr))
    mp.setattr(DBInstance, "create_from_cloudformation_json", classmethod(create_managing_its_password))


@pytest.fixture(scope="module")
def env(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    values = {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": "us-east-1", "TXPIPE_HOME": str(tmp_path_factory.mktemp("aws-home")),
              "TXPIPE_TARGET": "aws", "TXPIPE_STAGE": STAGE}
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SQS"):
            mp.delenv(key, raising=False)
        for key, value in values.items():
            mp.setenv(key, value)
        warnings.simplefilter("ignore")  # moto warns for each resource type it skips
        yield values


def client(service: str) -> Any:
    return boto3.client(service)


@pytest.fixture(scope="module")
def network(env: dict[str, str]) -> list[str]:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"), (3, "c"))]  # Serverless: three AZs
    # The VPC's own route to the AWS APIs the functions call (deploy checks it first): a NAT gateway.
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.100.0/24")["Subnet"]["SubnetId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
                     NatGatewayId=nat["NatGateway"]["NatGatewayId"])
    for subnet in subnets:
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return ["--param", f"ExistingVpcId={vpc}", "--param", f"ExistingSubnetIds={','.join(subnets)}"]


def cli(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


@contextlib.contextmanager
def invocations_answer(moto_url: str, *results: dict[str, Any]) -> Iterator[None]:
    """Inside the block, Lambda invocations answer these payloads in order. The server runs Lambda
    without Docker for the whole module (moto_url): functions live in one backend, listed and invoked alike."""
    requests.post(f"{moto_url}/moto-api/static/lambda-simple/response",
                  json={"results": [json.dumps(r) for r in results], "region": "us-east-1"},
                  timeout=10).raise_for_status()
    yield


def stack_exists() -> bool:
    names = [s["StackName"] for s in client("cloudformation").list_stacks()["StackSummaries"]
             if s["StackStatus"] != "DELETE_COMPLETE"]
    return f"txpipe-{STAGE}" in names


def test_plan_prints_the_change_set_and_creates_nothing(env: dict[str, str]) -> None:
    """--plan lists every resource to add (network included) and leaves no stack, bucket or function."""
    result = cli("deploy", "--plan", "--json")
    plan = json.loads(result.stdout)
    assert plan["action"] == "planned" and plan["changed"] is False
    planned = {c["resource"]: c for c in plan["changes"]}
    for resource in ("Vpc", "PrivateSubnetA", "SqsEndpoint", "OltpDatabase", "WarehouseWorkgroup", "OrdersQueue",
                     "StoreFunction", "StoreEventSource", "OrdersApi", "SyncSchedule", "DeadLettersAlarm"):
        assert planned[resource]["action"] == "Add", resource
    # No bucket to read the template from yet: sent in the request, as it fits CloudFormation's limit there.
    assert plan["template_source"] == "TemplateBody"
    assert [key.split("/")[0] for key in plan["uploads"]] == ["lambdas", "templates"]  # what a deploy would put
    assert not stack_exists()
    assert client("s3").list_buckets()["Buckets"] == []
    assert client("lambda").list_functions()["Functions"] == []
    # The monthly estimate of what the change set would create (its figures: tests/unit/test_pricing.py), with
    # the sync every 13 minutes: the longest a first deploy's 900 s SLA allows.
    assert plan["estimate"]["orders_per_month"] == 1_000_000 and plan["estimate"]["total_usd"] > 0
    sync = [line["detail"] for line in plan["estimate"]["lines"] if line["part"] == "Redshift Serverless: sync"]
    assert len(sync) == 1 and sync[0].endswith(" x 3,369 syncs")
    provisioned = json.loads(cli("deploy", "--plan", "--json", "--param", "WarehouseMode=provisioned").stdout)
    assert "WarehouseCluster" in {c["resource"] for c in provisioned["changes"]}
    assert "Redshift provisioned" in {line["part"] for line in provisioned["estimate"]["lines"]}
    assert not stack_exists()
    table = cli("deploy", "--plan", "--orders-per-month", "2000000").stdout
    assert "change set for stack txpipe-ci" in table and "nothing was created" in table
    assert "monthly cost at 2,000,000 orders" in table and "each further million orders adds $" in table


def test_deploy_creates_the_stack_and_runs_migrations(env: dict[str, str], network: list[str], moto_url: str) -> None:
    """deploy uploads the artifact and the compiled template, has CloudFormation read the template from the
    bucket (TemplateURL), applies the change set, migrates through ops and records the outputs."""
    migrated = {"applied": {"oltp": [1], "warehouse": [1]}, "state_population_rows": 51}
    with invocations_answer(moto_url, migrated):
        result = json.loads(cli("deploy", *network, "--json").stdout)
    assert result["action"] == "created" and result["changed"] is True and result["uploaded"] is True
    assert result["migrations"] == migrated
    assert result["template_source"] == "TemplateURL"
    assert result["estimate"]["total_usd"] > 0  # shown before the change set was executed (stderr)
    assert stack_exists()
    # What CloudFormation received: the template with its short tags resolved, byte for byte what was uploaded.
    stored = client("cloudformation").get_template(StackName=f"txpipe-{STAGE}")["TemplateBody"]
    assert stored == json.loads(compile_template().body)
    assert stored["Resources"]["OpsFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["OpsRole", "Arn"]}

    functions = {f["FunctionName"]: f for f in client("lambda").list_functions()["Functions"]}
    for name in ("ingest", "store", "sync", "refresh", "ops"):
        function = functions[f"txpipe-{STAGE}-{name}"]
        assert function["Runtime"] == "python3.12"
        assert function["Handler"] == f"lambdas.{name}.handler"
    mapping = client("lambda").list_event_source_mappings()["EventSourceMappings"][0]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    sqs = client("sqs")
    queue = sqs.get_queue_url(QueueName=f"txpipe-{STAGE}-orders")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == MAX_RECEIVE_COUNT
    assert int(attrs["VisibilityTimeout"]) >= 6 * functions[f"txpipe-{STAGE}-store"]["Timeout"]

    s3 = client("s3")
    bucket = result["record"]["bucket"]
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(objects) == {result["record"]["code_key"], result["record"]["template_key"]} == set(result["uploads"])
    template = s3.get_object(Bucket=bucket, Key=result["template"])["Body"].read()
    assert template == compile_template().body
    assert (Path(env["TXPIPE_HOME"]) / f"aws-{STAGE}.json").exists()


def test_ops_reads_the_master_secret_rds_manages(env: dict[str, str]) -> None:
    """The deployed ops function is told the ARN of the secret RDS made for the instance (no secret of the
    stack's own), and db.read_secret reads its {"username", "password"} from there as the function would."""
    [database] = client("rds").describe_db_instances()["DBInstances"]
    managed = database["MasterUserSecret"]["SecretArn"]
    variables = {name: client("lambda").get_function_configuration(FunctionName=f"txpipe-{STAGE}-{name}")
                 ["Environment"]["Variables"] for name in ("ops", "store", "sync")}
    assert variables["ops"]["TXPIPE_OLTP_SECRET"] == managed
    assert {variables[name]["TXPIPE_OLTP_SECRET"] for name in ("store", "sync")} == {"iam:txpipe_store",
                                                                                     "iam:txpipe_sync"}
    assert set(read_secret(managed)) >= {"username", "password"}


def test_deploy_again_changes_nothing(env: dict[str, str], network: list[str]) -> None:
    """A second deploy with the same code and settings changes nothing, says so, and deletes its empty change set."""
    before = _change_sets()
    result = json.loads(cli("deploy", *network, "--json").stdout)
    assert result["action"] == "unchanged" and result["changed"] is False and result["uploaded"] is False
    assert result["uploads"] == [] and result["template_source"] == "TemplateURL"
    assert "Nothing to change" in cli("deploy", *network).stdout
    assert _change_sets() == before


def test_plan_of_a_deployed_stack_reads_the_template_from_the_bucket(env: dict[str, str], network: list[str]) -> None:
    """Once a deploy has put the template in the bucket, --plan has CloudFormation read it from there, and
    still writes nothing: no object, no change set left, the stack as it was."""
    s3 = client("s3")
    bucket = json.loads((Path(env["TXPIPE_HOME"]) / f"aws-{STAGE}.json").read_text())["bucket"]
    before, change_sets = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]), _change_sets()
    plan = json.loads(cli("deploy", "--plan", "--json", *network, "--param", "StoreBatchSize=20").stdout)
    assert plan["action"] == "planned" and plan["template_source"] == "TemplateURL" and plan["uploads"] == []
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == before
    assert _change_sets() == change_sets
    stack = client("cloudformation").describe_stacks(StackName=f"txpipe-{STAGE}")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["StoreBatchSize"] == "10"


def _change_sets() -> list[str]:
    """The change sets CloudFormation holds (moto lists every stack's, executed ones too: compare, don't count)."""
    return sorted(s["ChangeSetName"] for s in client("cloudformation").list_change_sets(
        StackName=f"txpipe-{STAGE}")["Summaries"])


def test_operator_commands_go_through_the_functions(env: dict[str, str], moto_url: str) -> None:
    """sync-now, report and status invoke the deployed functions and read the real queues."""
    moved = {"synced": 3, "pending": 1, "seconds": 0.25, "batches": 1, "oldest_pending_seconds": 2,
             "staged_batches": 1}
    queue = {"visible": 0, "in_flight": 0, "dead_letters": 0}
    with invocations_answer(moto_url, queue, moved):  # ops queue_depth, then sync
        assert json.loads(cli("sync-now", "--json").stdout) == {"synced": 3, "inserted": 3, "already_present": 0,
                                                                 "pending": 1, "being_moved": 0, "still_queued": 0,
                                                                 "seconds": 0.25, "staged_batches": 1}

    report = {"state": "TX", "state_name": "Texas", "population": 29145505, "total_pizzas": 5, "gross_sales": 70.95,
              "gross_sales_per_capita": 0.0000024, "unique_customers": 2, "rank": 1,
              "top_pizzas": [{"pizza_type": "cheese", "total_pizzas": 5, "gross_sales": 70.95}]}
    fresh = {"views_refreshed_at": None, "awaiting_refresh": 0, "awaiting_sync": 0}
    with invocations_answer(moto_url, {"freshness": fresh, "states": [report]}):
        assert json.loads(cli("report", "--state", "TX", "--json").stdout)["states"] == [report]

    sqs = client("sqs")
    # To the DLQ: a message on the orders queue is taken at once by moto's event source mapping.
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=f"txpipe-{STAGE}-orders-dlq")["QueueUrl"], MessageBody="{}")
    pipeline = {"orders": 0, "customers": 0, "outbox_backlog": 0, "oldest_pending_at": None,
                "rejected_orders": 0, "last_sync": None, "queue": {"visible": 1, "in_flight": 0, "dead_letters": 0}}
    with invocations_answer(moto_url, pipeline):
        status = json.loads(cli("status", "--json").stdout)
    assert status["parts"]["stack"] == {"alive": True, "status": "CREATE_COMPLETE"}
    assert status["parts"]["queue"]["visible"] == 0
    assert status["parts"]["dead_letters"]["visible"] == 1
    assert status["pipeline"]["outbox_backlog"] == 0

    endpoint = json.loads(cli("endpoint", "--json").stdout)
    assert endpoint["url"].startswith("https://") and endpoint["url"].endswith(f"/{STAGE}/orders")


def test_dlq_and_rejected_commands_go_through_the_ops_function(env: dict[str, str], moto_url: str) -> None:
    """dlq list/redrive and rejected list reach the ops function on AWS as they do locally, and a
    dead letter waiting makes status exit 1 saying so."""
    listed = {"count": 1, "listed": 1, "reasons": {"not a valid order message: x": 1},
              "messages": [{"message_id": "m-1", "reason": "not a valid order message: x", "age_seconds": 90.0,
                            "sent_at": "2026-12-01T00:00:00+00:00", "dead_lettered_at": None, "receive_count": 1,
                            "bytes": 2}]}
    with invocations_answer(moto_url, listed):
        assert json.loads(cli("dlq", "list", "--json").stdout) == listed
    with invocations_answer(moto_url, listed):
        assert "not a valid order message" in cli("dlq", "list").stdout
    moving = {"moved": 1, "status": "RUNNING", "task_handle": "task-1"}
    with invocations_answer(moto_url, moving):
        assert "SQS move task task-1" in cli("dlq", "redrive").stdout
    rejected = {"count": 0, "oldest_at": None, "newest_at": None, "reasons": {}, "rows": []}
    with invocations_answer(moto_url, rejected):
        assert "No rejected orders" in cli("rejected", "list").stdout
    waiting = {"orders": 0, "customers": 0, "outbox_backlog": 0, "oldest_pending_at": None, "rejected_orders": 0,
               "last_sync": None, "errors": {}, "queue": {"visible": 0, "in_flight": 0, "dead_letters": 2}}
    with invocations_answer(moto_url, waiting):
        assert "2 dead letters wait" in cli("status", code=1).output


def test_a_function_error_is_one_line_and_exit_1(env: dict[str, str], moto_url: str) -> None:
    """An ops answer carrying an error fails the command with that reason (an unknown state never gets
    that far: the CLI refuses it first, exit 2)."""
    with invocations_answer(moto_url, {"error": 'relation "state_sales" does not exist'}):
        result = cli("report", "--state", "TX", code=1)
    assert 'relation "state_sales" does not exist' in result.output
    assert "ZZ is not a US state" in cli("report", "--state", "ZZ", code=2).output


def test_dashboard_and_history_go_through_the_ops_function(env: dict[str, str], moto_url: str) -> None:
    """On AWS the dashboard runs on this machine and reads through the ops function (Lambda Invoke), as
    `report` does; `seed --history` loads its chunks through it too."""
    from tests.support.dashboard import Dashboard

    texas = {"state": "TX", "state_name": "Texas", "population": 29145505, "rank": 1, "total_pizzas": 5,
             "gross_sales": 70.95, "gross_sales_per_capita": 0.0000024, "unique_customers": 2,
             "top_pizzas": [{"pizza_type": "cheese", "total_pizzas": 5, "gross_sales": 70.95}]}
    with invocations_answer(moto_url, {"states": [texas]}, {"states": [texas]}):  # its start-up check, then TX
        dashboard = Dashboard(Path(env["TXPIPE_HOME"]), target="aws")
        try:
            assert dashboard.json("/api/states/TX") == texas
        finally:
            dashboard.stop()
    with invocations_answer(moto_url, {"inserted": 10, "already_present": 0}):
        loaded = json.loads(cli("seed", "--history", "10", "--json").stdout)
    assert (loaded["orders"], loaded["inserted"]) == (10, 10)


def test_destroy_removes_the_stack_and_the_artifacts(env: dict[str, str]) -> None:
    """destroy --yes deletes the stack, every function and queue, the staging bucket (emptied first: a
    crashed sync may leave a batch in it), the artifacts bucket and the record."""
    resources = client("cloudformation").list_stack_resources(StackName=f"txpipe-{STAGE}")["StackResourceSummaries"]
    [staging] = [r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "WarehouseStagingBucket"]
    client("s3").put_object(Bucket=staging, Key="stage/orders-leftover.csv.gz", Body=b"x")
    result = json.loads(cli("destroy", "--yes", "--json").stdout)
    assert result["destroyed"] is True and result["artifacts_removed"] == 2  # the Lambda artifact and the template
    assert not stack_exists()
    assert client("lambda").list_functions()["Functions"] == []
    assert client("sqs").list_queues().get("QueueUrls", []) == []
    assert client("s3").list_buckets()["Buckets"] == []
    assert not (Path(env["TXPIPE_HOME"]) / f"aws-{STAGE}.json").exists()
    assert "Nothing to destroy" in cli("destroy", "--yes").stdout

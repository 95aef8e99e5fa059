"""AWS answered in process at botocore's network edge, for orchestration scenarios no emulator can produce
(a stack that rolled back, a plan's leftover shell, a change set that would replace a database).

`ScriptedAws(answer)` is a real boto3 session: every client built from it (txpipe's AwsClient, the planner's
EC2 reads, the invoke client) runs botocore's whole request path, parameters validated against the service
model, up to the HTTP send, which `answer(operation, params)` replaces, as botocore's Stubber does. Unlike a
Stubber's fixed queue, `answer` is a function of the scenario's state, so a test states what AWS holds rather
than the order in which txpipe happens to ask. Each response is validated against the operation's output
shape too; an `AwsError` becomes the ClientError AWS would raise. Every call is recorded, in order.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters


@dataclass(frozen=True)
class AwsError(Exception):
    code: str
    message: str = ""
    status: int = 400


Answer = Callable[[str, dict[str, Any]], dict[str, Any]]


class ScriptedAws:
    def __init__(self, answer: Answer, region: str = "eu-west-1") -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (operation, its parameters), in order
        self.session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="example",
                                             region_name=region)
        self._pending = threading.local()  # s3transfer uploads from threads of its own
        self.session.events.register("before-parameter-build", self._record)
        self.session.events.register("before-call", self._respond)

    def names(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))
        try:
            response = self.answer(model.name, dict(params))
        except AwsError as error:
            self._pending.value = (AWSResponse(None, error.status, {}, None), {
                "Error": {"Code": error.code, "Message": error.message},
                "ResponseMetadata": {"HTTPStatusCode": error.status}})
            return
        if model.output_shape is not None:
            validate_parameters(response, model.output_shape)
        self._pending.value = (AWSResponse(None, 200, {}, None), response)

    def _respond(self, model: Any, **_: Any) -> Any:
        pending, self._pending.value = getattr(self._pending, "value", None), None
        if pending is None:
            raise AssertionError(f"{model.name} reached the network edge without an answer")
        return pending


ACCOUNT = "123456789012"


class StackCloud:
    """One account holding at most one stack, its artifacts bucket and change sets: what txpipe's deploy,
    plan and destroy ask of CloudFormation, S3, STS, EC2, Lambda and SQS, answered from that state."""

    def __init__(self, stack_status: str | None = None, ready: bool = True, stored: set[str] | None = None,
                 final: tuple[str, list[dict[str, Any]]] = ("CREATE_COMPLETE", []),
                 changes: list[dict[str, str]] | None = None, region: str = "eu-west-1") -> None:
        self.status, self.ready, self.final, self.region = stack_status, ready, final, region
        self.stored = stored  # keys in the artifacts bucket; None: no bucket
        self.changes = changes if changes is not None else [
            {"Action": "Add", "LogicalResourceId": "OrdersQueue", "ResourceType": "AWS::SQS::Queue"}]
        self.events: list[dict[str, Any]] = []
        self.scripted = ScriptedAws(self.answer, region)
        self.session = self.scripted.session

    def names(self) -> list[str]:
        return self.scripted.names()

    def params(self, operation: str) -> list[dict[str, Any]]:
        return self.scripted.params(operation)

    def answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_{operation}", None)
        if handler is None:
            raise AssertionError(f"the scenario does not script {operation}")
        return handler(params)

    # STS and EC2
    def _GetCallerIdentity(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - AWS's operation names
        return {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ops", "UserId": "AIDAEXAMPLE"}

    def _DescribeManagedPrefixLists(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"PrefixLists": [{"PrefixListId": "pl-0123456789abcdef0",
                                 "PrefixListName": f"com.amazonaws.{self.region}.s3"}]}

    # S3
    def _HeadBucket(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if self.stored is None:
            raise AwsError("404", "Not Found", 404)
        return {}

    def _HeadObject(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if self.stored is None or params["Key"] not in self.stored:
            raise AwsError("404", "Not Found", 404)
        return {}

    def _CreateBucket(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.stored = set()
        return {}

    def _PutBucketEncryption(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {}

    def _PutPublicAccessBlock(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {}

    def _PutObject(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        assert self.stored is not None, "an object put before its bucket exists"
        self.stored.add(params["Key"])
        return {"ETag": '"0"'}

    def _ListObjectVersions(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"Versions": [{"Key": key, "VersionId": "v1"} for key in sorted(self.stored or ())],
                "IsTruncated": False}

    def _DeleteObjects(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        for item in params["Delete"]["Objects"]:
            (self.stored or set()).discard(item["Key"])
        return {"Deleted": [{"Key": item["Key"]} for item in params["Delete"]["Objects"]]}

    def _DeleteBucket(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.stored = None
        return {}

    # CloudFormation
    def _stack(self) -> dict[str, Any]:
        if self.status is None:
            raise AwsError("ValidationError", "Stack with id txpipe-prod does not exist")
        return {"StackName": "txpipe-prod", "StackId": "id-1", "StackStatus": self.status,
                "CreationTime": "2026-01-01T00:00:00Z", "Outputs": []}

    def _DescribeStacks(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"Stacks": [self._stack()]}

    def _CreateChangeSet(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if params["ChangeSetType"] == "CREATE":
            self.status = "REVIEW_IN_PROGRESS"  # the shell a new stack's change set lives in
        return {"Id": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:changeSet/{params['ChangeSetName']}/1",
                "StackId": "id-1"}

    def _DescribeChangeSet(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not self.ready:
            return {"Status": "FAILED", "StatusReason": "The submitted information didn't contain changes.",
                    "ChangeSetName": params["ChangeSetName"], "StackName": "txpipe-prod"}
        return {"Status": "CREATE_COMPLETE", "ChangeSetName": params["ChangeSetName"], "StackName": "txpipe-prod",
                "Changes": [{"Type": "Resource", "ResourceChange": change} for change in self.changes]}

    def _DeleteChangeSet(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {}

    def _ExecuteChangeSet(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.status, self.events = self.final[0], list(self.final[1])
        return {}

    def _DeleteStack(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.status = None  # gone (a shell at once; the stack once its deletion is followed)
        return {}

    def _DescribeStackEvents(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        from datetime import UTC, datetime

        return {"StackEvents": [{"StackId": "id-1", "StackName": "txpipe-prod", "EventId": f"event-{i}", **event,
                                 "Timestamp": datetime.now(UTC)} for i, event in enumerate(self.events)]}

    def _ListStackResources(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"StackResourceSummaries": []}

    # Lambda and SQS
    def _Invoke(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        import io
        import json

        assert params["FunctionName"] == "txpipe-prod-ops", params
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps({"applied": {"oltp": [1], "warehouse": [1]}})
                                                          .encode())}

    def _GetQueueUrl(self, _: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        raise AwsError("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")


# What only reads AWS, and what plans through CloudFormation (a change set, or a new stack's shell).
READS = {"GetCallerIdentity", "DescribeStacks", "HeadBucket", "HeadObject", "DescribeManagedPrefixLists"}
PLANNING = {"CreateChangeSet", "DescribeChangeSet", "DeleteChangeSet", "DeleteStack"}


def scripted_client(service: str, answer: Answer, region: str = "us-east-1") -> Any:
    """A real botocore client of `service` whose every call `answer` answers (see ScriptedAws)."""
    return ScriptedAws(answer, region).session.client(service)


def accept_objects(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """S3 that takes every object put and every delete (tests that need the statements, not the bytes)."""
    if operation not in ("PutObject", "DeleteObject"):
        raise AssertionError(f"S3 {operation} was not expected")
    return {"ETag": '"0"'} if operation == "PutObject" else {}


def null_s3() -> Any:
    """A real S3 client that takes every staged object and forgets it."""
    return scripted_client("s3", accept_objects)

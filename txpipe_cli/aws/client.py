"""The one place txpipe talks to AWS: intent-level methods over boto3.

Everything else calls these methods, so tests can point one object at moto (or
botocore's Stubber) and the rest of the code never imports boto3. Standard AWS
configuration applies through the boto3 session: profiles, regions and
AWS_ENDPOINT_URL (how the tests reach a moto server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from txpipe_cli.errors import TxpipeError, aws_error

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
IN_PROGRESS = "_IN_PROGRESS"


@dataclass(frozen=True)
class Change:
    action: str
    logical_id: str
    resource_type: str
    replacement: str

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "resource": self.logical_id, "type": self.resource_type,
                "replacement": self.replacement}


@dataclass(frozen=True)
class TemplateSource:
    """Where CloudFormation reads a template from: the request itself (TemplateBody) or S3 (TemplateURL)."""

    body: str = ""
    url: str = ""

    @property
    def kind(self) -> str:
        return "TemplateURL" if self.url else "TemplateBody"

    def as_params(self) -> dict[str, str]:
        return {"TemplateURL": self.url} if self.url else {"TemplateBody": self.body}


@dataclass(frozen=True)
class ChangeSet:
    name: str
    ready: bool  # False: nothing to change (CloudFormation refused an empty change set)
    changes: list[Change]
    reason: str = ""


class AwsClient:
    def __init__(self, session: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}
        self._sleep = sleep

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                import boto3  # lazy: the local target never pays for it

                self._session = boto3.session.Session()
            from botocore.exceptions import NoRegionError

            try:
                self._clients[service] = self._session.client(service)
            except NoRegionError:
                raise TxpipeError("no AWS region configured",
                                  hint="export AWS_DEFAULT_REGION or set a region in your AWS profile") from None
        return self._clients[service]

    def client(self, service: str) -> Any:
        """The boto3 client for a service, built here once (for read-only checks such as txpipe doctor)."""
        return self._client(service)

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """One AWS call; AWS's own errors become one actionable line."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client(service), operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise TxpipeError(f"AWS {service}.{operation} failed: {error.get('Code')}: {error.get('Message')}") \
                from None
        except BotoCoreError as exc:
            known = aws_error(exc)  # no credentials or no region: say which, and how to set it
            if known is not None and not known.reason.startswith("AWS: "):
                raise known from None
            raise TxpipeError(f"AWS {service}.{operation} failed: {exc}",
                              hint="run: txpipe doctor --target aws") from None

    # ------------------------------------------------------------------ identity

    @property
    def region(self) -> str:
        region = self._client("sts").meta.region_name
        if not region:
            raise TxpipeError("no AWS region configured", hint="export AWS_DEFAULT_REGION or set one in your profile")
        return region

    def account_id(self) -> str:
        return self._call("sts", "get_caller_identity")["Account"]

    # ------------------------------------------------------------------ artifacts (S3)

    def bucket_exists(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client("s3").head_bucket(Bucket=bucket)
            return True
        except ClientError:
            return False

    def ensure_bucket(self, bucket: str) -> bool:
        """Creates the artifacts bucket, encrypted and with public access blocked; True if created."""
        if self.bucket_exists(bucket):
            return False
        region = self.region
        config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        self._call("s3", "create_bucket", Bucket=bucket, **config)
        self._call("s3", "put_bucket_encryption", Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        block = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                 "RestrictPublicBuckets": True}
        self._call("s3", "put_public_access_block", Bucket=bucket, PublicAccessBlockConfiguration=block)
        return True

    def object_exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client("s3").head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            return False

    def upload(self, path: Path, bucket: str, key: str) -> None:
        self._call("s3", "upload_file", Filename=str(path), Bucket=bucket, Key=key)

    def put_object(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self._call("s3", "put_object", Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def s3_url(self, bucket: str, key: str) -> str:
        """The https URL of an object, as CloudFormation's TemplateURL takes it (virtual-hosted style).
        Built, not asked of the S3 client: behind AWS_ENDPOINT_URL (an emulator) that would name the
        emulator, which CloudFormation does not accept as a template location."""
        region = self.region
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{bucket}.s3.{region}.{suffix}/{key}"

    def delete_bucket(self, bucket: str) -> int:
        """Empties (all versions) and deletes a bucket; returns how many objects were removed."""
        if not self.bucket_exists(bucket):
            return 0
        removed = self.empty_bucket(bucket)
        self._call("s3", "delete_bucket", Bucket=bucket)
        return removed

    def empty_bucket(self, bucket: str) -> int:
        """Deletes every object (and version) in a bucket; returns how many."""
        if not self.bucket_exists(bucket):
            return 0
        removed = 0
        paginator = self._client("s3").get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objects:
                self._call("s3", "delete_objects", Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                removed += len(objects)
        return removed

    # ------------------------------------------------------------------ CloudFormation

    def stack(self, name: str) -> dict[str, Any] | None:
        """The stack's description, or None if it does not exist (or was deleted)."""
        from botocore.exceptions import ClientError

        try:
            stacks = self._client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise TxpipeError(f"AWS cloudformation.describe_stacks failed: {exc}") from None
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None
        return stacks[0]

    def create_change_set(self, stack: str, name: str, template: TemplateSource, parameters: dict[str, str],
                          change_type: str, timeout: float = 300) -> ChangeSet:
        self._call("cloudformation", "create_change_set", StackName=stack, ChangeSetName=name,
                   ChangeSetType=change_type, **template.as_params(),
                   Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                   Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                   Tags=[{"Key": "txpipe:stack", "Value": stack}])
        deadline = time.monotonic() + timeout
        while True:
            described = self._call("cloudformation", "describe_change_set", StackName=stack, ChangeSetName=name)
            status = described["Status"]
            if status == "CREATE_COMPLETE":
                return ChangeSet(name, True, [_change(c) for c in self._all_changes(stack, name, described)])
            if status == "FAILED":
                reason = described.get("StatusReason", "")
                if any(marker in reason for marker in NO_CHANGES):
                    return ChangeSet(name, False, [], reason)
                raise TxpipeError(f"CloudFormation could not plan the change: {reason}")
            if time.monotonic() > deadline:
                raise TxpipeError(f"change set {name} still {status} after {timeout:.0f} s")
            self._sleep(2)

    def _all_changes(self, stack: str, name: str, first: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = first
        while True:
            yield from page.get("Changes", [])
            token = page.get("NextToken")
            if not token:
                return
            page = self._call("cloudformation", "describe_change_set", StackName=stack, ChangeSetName=name,
                              NextToken=token)

    def delete_change_set(self, stack: str, name: str) -> None:
        self._call("cloudformation", "delete_change_set", StackName=stack, ChangeSetName=name)

    def execute_change_set(self, stack: str, name: str) -> None:
        self._call("cloudformation", "execute_change_set", StackName=stack, ChangeSetName=name)

    def events_since(self, stack: str, since: datetime) -> list[dict[str, Any]]:
        """Events of a stack (by name, or by id once deleted) since a time; none if it is gone."""
        from botocore.exceptions import ClientError

        try:
            events = self._client("cloudformation").describe_stack_events(StackName=stack)["StackEvents"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return []
            raise TxpipeError(f"AWS cloudformation.describe_stack_events failed: {exc}") from None
        return sorted((e for e in events if e["Timestamp"] >= since), key=lambda e: e["Timestamp"])

    def wait_for_stack(self, stack: str, since: datetime, on_event: Callable[[dict[str, Any]], None],
                       timeout: float = 3600) -> tuple[str, list[dict[str, Any]]]:
        """Follows a stack operation to its end; returns (final status, failed events)."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events_since(stack, since):
                if event["EventId"] not in seen:
                    seen.add(event["EventId"])
                    on_event(event)
            described = self.stack(stack)
            status = described["StackStatus"] if described else "DELETE_COMPLETE"
            if IN_PROGRESS not in status:
                failed = [e for e in self.events_since(stack, since) if e.get("ResourceStatus", "").endswith("FAILED")]
                return status, failed
            if time.monotonic() > deadline:
                raise TxpipeError(f"stack {stack} still {status} after {timeout:.0f} s")
            self._sleep(5)

    def stack_outputs(self, stack: str) -> dict[str, str]:
        described = self.stack(stack) or {}
        return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}

    def stack_resources(self, stack: str) -> dict[str, str]:
        """Logical id -> physical id of every resource in the stack."""
        paginator = self._client("cloudformation").get_paginator("list_stack_resources")
        return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                for page in paginator.paginate(StackName=stack) for r in page["StackResourceSummaries"]}

    def delete_stack(self, stack: str) -> None:
        self._call("cloudformation", "delete_stack", StackName=stack)

    # ------------------------------------------------------------------ functions and API

    def invoke(self, function: str, payload: dict[str, Any]) -> Any:
        """Invokes a function synchronously; a function error becomes a TxpipeError."""
        response = self._call("lambda", "invoke", FunctionName=function, InvocationType="RequestResponse",
                              Payload=json.dumps(payload).encode())
        body = response["Payload"].read()
        try:
            result = json.loads(body) if body else None
        except ValueError:
            raise TxpipeError(f"function {function} returned a non-JSON payload: {body[:200]!r}") from None
        if response.get("FunctionError"):
            message = result.get("errorMessage") if isinstance(result, dict) else result
            raise TxpipeError(f"function {function} failed: {message}",
                              hint=f"see its logs: /aws/lambda/{function}")
        return result

    def api_key_value(self, key_id: str) -> str:
        return self._call("apigateway", "get_api_key", apiKey=key_id, includeValue=True)["value"]

    def queue_url(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self._client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError:
            return None

    def queue_depth(self, url: str) -> tuple[int, int]:
        attrs = self._call("sqs", "get_queue_attributes", QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def alarms_firing(self, names: list[str]) -> dict[str, str]:
        """The named CloudWatch alarms now in ALARM, with their state reason."""
        response = self._call("cloudwatch", "describe_alarms", AlarmNames=names)
        return {a["AlarmName"]: a.get("StateReason", "") for a in response.get("MetricAlarms", [])
                if a.get("StateValue") == "ALARM"}


def _change(raw: dict[str, Any]) -> Change:
    rc = raw.get("ResourceChange", {})
    return Change(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"),
                  rc.get("Replacement") or "-")

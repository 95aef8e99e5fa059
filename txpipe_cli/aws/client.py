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
from datetime import datetime
from pathlib import Path
from typing import Any

from txpipe_cli.aws.change_sets import NO_CHANGES, ChangeSet, TemplateSource, change_of
from txpipe_cli.errors import TxpipeError, aws_error

IN_PROGRESS = "_IN_PROGRESS"
# Seconds the CLI waits for a synchronous invoke past the function's own timeout (lambdas/functions.py):
# long enough for Lambda to report the timeout itself, so the answer is never cut off and asked again.
INVOKE_MARGIN = 30.0
# What to do when the session lacks a region, credentials, or both: never the command just run.
CONFIG_HINTS = {
    ("region",): "run: export AWS_DEFAULT_REGION=us-east-1, or set region in your AWS profile",
    ("credentials",): "run: aws configure, or aws sso login, or export AWS_PROFILE=<profile>",
    ("region", "credentials"): "run: aws configure (it asks for both), or export AWS_PROFILE=<a profile with both>",
}


class AwsConfigError(TxpipeError):
    """No region or no credentials: found before the first AWS call, so nothing is built or asked first."""

    def __init__(self, missing: tuple[str, ...], reason: str, hint: str | None = None) -> None:
        super().__init__(reason, hint=hint or CONFIG_HINTS.get(missing))
        self.missing = missing  # of region, credentials


class AwsClient:
    def __init__(self, session: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._session = session
        self._checked = False
        self._clients: dict[str, Any] = {}
        self._sleep = sleep
        self._account: str | None = None

    def _ready_session(self) -> Any:
        """The boto3 session, checked once for a region and credentials. Without either no call can
        succeed, so the first client built says which is missing, in one line and before any work (an STS
        client without a region would even report `aws-global`, which is no region)."""
        if not self._checked:
            from botocore.exceptions import BotoCoreError

            try:
                if self._session is None:
                    import boto3  # lazy: the local target never pays for it

                    self._session = boto3.session.Session()
                missing = tuple(name for name, found in (("region", self._session.region_name),
                                                         ("credentials", self._session.get_credentials())) if not found)
            except BotoCoreError as exc:  # a profile missing from the config file, a broken credential source
                raise AwsConfigError(("credentials",), f"AWS configuration cannot be read: {exc}",
                                     "run: aws configure list-profiles, then export AWS_PROFILE=<profile>") from None
            if missing:
                raise AwsConfigError(missing, f"no AWS {' and no AWS '.join(missing)} configured")
            self._checked = True
        return self._session

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._ready_session().client(service)
        return self._clients[service]

    def client(self, service: str) -> Any:
        """The boto3 client for a service, built here once (for read-only checks such as txpipe doctor)."""
        return self._client(service)

    def invoke_client(self, read_timeout: float) -> Any:
        """The Lambda client for synchronous invokes that wait up to `read_timeout` seconds for the answer,
        and never retry: boto3's default client gives up after 60 s and sends the request again (it retries a
        read timeout, a dropped connection, a 5xx), so a sync or migration past a minute ran twice. TCP
        keepalive holds a long wait open through NATs and load balancers that drop idle connections."""
        key = f"lambda-invoke-{read_timeout:g}"
        if key not in self._clients:
            from botocore.config import Config

            config = Config(read_timeout=read_timeout, tcp_keepalive=True, retries={"total_max_attempts": 1})
            self._clients[key] = self._ready_session().client("lambda", config=config)
        return self._clients[key]

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """One AWS call; AWS's own errors become one actionable line."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client(service), operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _failure(service, operation, exc) from None

    # ------------------------------------------------------------------ identity

    @property
    def region(self) -> str:
        return str(self._ready_session().region_name)

    def account_id(self) -> str:
        """The caller's account (sts:GetCallerIdentity, asked once): also the proof the credentials work."""
        if self._account is None:
            self._account = str(self._call("sts", "get_caller_identity")["Account"])
        return self._account

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
                return ChangeSet(name, True, [change_of(c) for c in self._all_changes(stack, name, described)])
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

    def invoke(self, function: str, payload: dict[str, Any], *, function_timeout: float,
               wait: float | None = None) -> Any:
        """Invokes a function synchronously, exactly once; a function error becomes a TxpipeError.

        The answer is awaited for the function's own timeout plus INVOKE_MARGIN, or `wait` seconds if the
        caller will wait less; a wait that runs out, or a connection that drops, is reported and never
        retried: the function may have run, and running a sync or a migration twice is not harmless."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError

        read_timeout = function_timeout + INVOKE_MARGIN if wait is None else min(wait, function_timeout + INVOKE_MARGIN)
        client, logs = self.invoke_client(read_timeout), f"see its logs: /aws/lambda/{function}"
        try:
            response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                                     Payload=json.dumps(payload).encode())
            body = response["Payload"].read()
        except ReadTimeoutError:
            raise TxpipeError(f"function {function} did not answer within {read_timeout:g} s; it may still be "
                              "running, and was not invoked again", hint=logs) from None
        except ConnectionClosedError:
            raise TxpipeError(f"the connection closed before function {function} answered; it may have run, "
                              "and was not invoked again", hint=logs) from None
        except (ClientError, BotoCoreError) as exc:
            raise _failure("lambda", "invoke", exc) from None
        try:
            result = json.loads(body) if body else None
        except ValueError:
            raise TxpipeError(f"function {function} returned a non-JSON payload: {body[:200]!r}") from None
        if response.get("FunctionError"):
            message = result.get("errorMessage") if isinstance(result, dict) else result
            raise TxpipeError(f"function {function} failed: {message}", hint=logs)
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

    # ------------------------------------------------------------------ the warehouse bill

    def ensure_usage_limit(self, workgroup_arn: str, amount: int, *, usage_type: str = "serverless-compute",
                           period: str = "monthly", breach_action: str = "deactivate") -> str:
        """One usage limit of this type and period on a Redshift Serverless workgroup, at this amount and
        breach action: `created`, `updated` or `unchanged`. (CloudFormation has no resource type for it.)"""
        found, token = [], None
        while True:
            page = self._call("redshift-serverless", "list_usage_limits", resourceArn=workgroup_arn,
                              usageType=usage_type, **({"nextToken": token} if token else {}))
            found += [limit for limit in page.get("usageLimits", []) if limit.get("period") == period]
            token = page.get("nextToken")
            if not token:
                break
        if not found:
            self._call("redshift-serverless", "create_usage_limit", resourceArn=workgroup_arn, usageType=usage_type,
                       period=period, amount=amount, breachAction=breach_action)
            return "created"
        limit = found[0]
        if (limit.get("amount"), limit.get("breachAction")) == (amount, breach_action):
            return "unchanged"
        self._call("redshift-serverless", "update_usage_limit", usageLimitId=limit["usageLimitId"], amount=amount,
                   breachAction=breach_action)
        return "updated"

    def alarms_firing(self, names: list[str]) -> dict[str, str]:
        """The named CloudWatch alarms now in ALARM, with their state reason."""
        response = self._call("cloudwatch", "describe_alarms", AlarmNames=names)
        return {a["AlarmName"]: a.get("StateReason", "") for a in response.get("MetricAlarms", [])
                if a.get("StateValue") == "ALARM"}


def _failure(service: str, operation: str, exc: Exception) -> TxpipeError:
    """AWS's own error (a ClientError, or botocore's) as one actionable line."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return TxpipeError(f"AWS {service}.{operation} failed: {error.get('Code')}: {error.get('Message')}")
    known = aws_error(exc)  # no credentials or no region: say which, and how to set it
    if known is not None and not known.reason.startswith("AWS: "):
        return known
    return TxpipeError(f"AWS {service}.{operation} failed: {exc}", hint="run: txpipe doctor --target aws")

"""The five functions, written once: name, handler, timeout, memory, whether they sit in the VPC,
which databases each one reaches (each as its own database user, with only its grants), and which AWS
APIs each calls at run time, itself or through a driver.

The local runtime runs them from here; infra/template.yaml declares the same on AWS. A function in the VPC
reaches an AWS API only through a VPC endpoint of that service or a NAT, so `calls` is what the network must
give it: tests/aws/test_reachability.py holds the template (and deploy's check of an existing VPC) to it, and
the tests' recording of every AWS call a handler makes (tests/support/aws_calls.py) holds the code to it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AwsCall:
    """AWS API operations a function calls (botocore's operation names), and why."""

    service: str  # botocore's service name; its interface endpoint is com.amazonaws.<region>.<service>
    operations: tuple[str, ...]
    why: str
    warehouse: str = ""  # "serverless" or "provisioned": made only with that warehouse; "": always
    via: str = ""  # a driver that makes the call for the function (redshift-connector's IAM login)


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # module.function, as Lambda's Handler setting
    timeout_seconds: int
    memory_mb: int
    in_vpc: bool
    databases: tuple[str, ...]  # of oltp, warehouse, queue (the local queue is a database)
    description: str
    calls: tuple[AwsCall, ...] = ()

    def calls_for(self, warehouse: str) -> tuple[AwsCall, ...]:
        """The calls made with that warehouse mode (serverless or provisioned)."""
        return tuple(c for c in self.calls if c.warehouse in ("", warehouse))

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        module, _, attribute = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), attribute)

    @property
    def db_user(self) -> str:
        return f"txpipe_{self.name}"


# The warehouse's credentials, by mode: redshift-connector asks for them with the function's role.
_WAREHOUSE_LOGIN = (
    AwsCall("redshift-serverless", ("GetCredentials",), "IAM login as IAMR:<role>", "serverless",
            via="redshift-connector"),
    AwsCall("redshift", ("GetClusterCredentialsWithIAM",), "IAM login as IAMR:<role>", "provisioned",
            via="redshift-connector"),
)

FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("ingest", "lambdas.ingest.handler", 10, 512, False, ("queue",),
             "POST /orders -> validated orders on the queue",
             (AwsCall("sqs", ("SendMessageBatch",), "enqueue the accepted orders"),)),
    Function("store", "lambdas.store.handler", 60, 512, True, ("oltp", "queue"),
             "SQS orders -> RDS orders + outbox, partial batch failures",
             (AwsCall("sqs", ("ChangeMessageVisibilityBatch", "SendMessage"),
                      "back off a transient failure; dead-letter a message that can never be stored"),)),
    Function("sync", "lambdas.sync.handler", 300, 1024, True, ("oltp", "warehouse"),
             "outbox -> Redshift orders_fact, publishes the oldest pending age",
             (AwsCall("s3", ("PutObject", "DeleteObject"), "stage each batch for COPY, then remove it"),
              *_WAREHOUSE_LOGIN)),
    Function("refresh", "lambdas.refresh.handler", 300, 256, True, ("warehouse",),
             "REFRESH MATERIALIZED VIEW for the reporting views", _WAREHOUSE_LOGIN),
    Function("ops", "lambdas.ops.handler", 300, 512, True, ("oltp", "warehouse", "queue"),
             "migrations and read-only reports on the private databases",
             (AwsCall("secretsmanager", ("GetSecretValue",), "the admin secrets the migrations log in with"),
              AwsCall("redshift-serverless", ("GetNamespace",), "where the namespace keeps its admin secret",
                      "serverless"),
              AwsCall("sqs", ("GetQueueAttributes", "ReceiveMessage", "ChangeMessageVisibilityBatch",
                              "StartMessageMoveTask", "PurgeQueue"),
                      "queue depth and the dlq commands"))),
)}

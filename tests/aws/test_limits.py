"""AWS limits that moto does not enforce, checked against what txpipe really builds and sends (issue 9).

Each test measures the real thing (the Lambda artifact, the template's environments, packed queue
messages, the ops function's replies, the API's body cap) at the largest size the code allows, and
compares it with the documented limit its docstring names. `pytest -s` prints the figures.
"""

from __future__ import annotations

import base64
import json
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_type_hints

import botocore.loaders
import pytest
from cfnlint.decode.cfn_yaml import loads

from lambdas import ops
from lambdas.core import orders as orders_module
from lambdas.core import rejections, reporting, store
from lambdas.core.orders import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, MAX_ORDERS_PER_REQUEST, Order, pack_messages
from lambdas.core.queue import REASON_LIMIT, DeadLetter, QueueStats
from tests.support.fakes import SelfCursor
from txpipe_cli.aws import package as packaging
from txpipe_cli.commands.dlq import dlq_list
from txpipe_cli.local.events import api_gateway_event

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
# Lambda quotas: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (the zip sizes in
# bytes as Lambda's GetAccountSettings reports them: AccountLimit.CodeSizeZipped / CodeSizeUnzipped).
LAMBDA_ZIPPED_BYTES = 52_428_800       # 50 MB "zipped, when uploaded through the Lambda API or SDKs"
LAMBDA_UNZIPPED_BYTES = 262_144_000    # 250 MB unzipped, layers included
LAMBDA_ENVIRONMENT_BYTES = 4_096       # "Function environment variables: 4 KB"
LAMBDA_SYNC_PAYLOAD_BYTES = 6_291_456  # "6 MB each for request and response (synchronous)"
# SQS message quotas: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
# SQS raised its maximum from 256 KiB to 1 MiB in 2025; 256 KiB stays the bound for what txpipe sends (the
# limit DESIGN.md states, and still that of a queue whose MaximumMessageSize is 262,144), 1 MiB for what
# a queue may hold.
SQS_MESSAGE_BYTES, SQS_MESSAGE_BYTES_NOW = 262_144, 1_048_576
# API Gateway REST API quotas: https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html
API_GATEWAY_PAYLOAD_BYTES = 10_485_760  # "Payload size: 10 MB", not adjustable
API_GATEWAY_HEADER_BYTES = 10_240       # "Total combined size of request line and header values"
# The 3.12+ Python runtimes serialize a handler's result with ensure_ascii=False (awslambdaric's
# lambda_runtime_marshaller): non-ASCII travels as UTF-8, at most 4 bytes a character.
RUNTIMES_WITHOUT_ASCII_ESCAPES = {"python3.12", "python3.13"}
ASTRAL = "\U0001f355"  # 4 bytes in UTF-8: the widest character SQS accepts in a body or an attribute
BIG = 2**63 - 1
WHEN = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
# The most `txpipe dlq list --limit` asks for (the ops function itself does not clamp it).
DLQ_LIST_MAX = next(m.max for m in get_type_hints(dlq_list, include_extras=True)["limit"].__metadata__
                    if getattr(m, "max", None))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return loads(TEMPLATE.read_text())


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def test_lambda_artifact_fits_the_zipped_and_unzipped_limits(tmp_path: Path, template: dict[str, Any]) -> None:
    """Lambda quotas, "Deployment package (.zip file archive) size": the artifact deploy uploads (CPython 3.12
    wheels, manylinux2014_x86_64; cached after the first build) is at most 50 MB zipped and 250 MB unzipped
    (the sum of its files' sizes), and no layer adds to it."""
    artifact = packaging.build(tmp_path, python_version="3.12")
    path = Path(artifact["functions"]["ingest"]["zip"])
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    zipped = path.stat().st_size
    print(f"\nLambda artifact: {zipped:,} B zipped ({zipped / LAMBDA_ZIPPED_BYTES:.0%} of 50 MB), "
          f"{unzipped:,} B unzipped ({unzipped / LAMBDA_UNZIPPED_BYTES:.0%} of 250 MB)")
    assert zipped == artifact["bytes"] and unzipped > zipped > 1_000_000  # the wheels are in it
    assert zipped <= LAMBDA_ZIPPED_BYTES and unzipped <= LAMBDA_UNZIPPED_BYTES
    assert all("Layers" not in properties for properties in functions(template).values())


# The longest value of each part of a name (an upper bound: no one region combines all of them), from
# botocore's endpoint data; resources' names from their own name properties in the template.
_PARTITIONS = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
PARTITION = max((p["partition"] for p in _PARTITIONS), key=len)
REGION = max((r for p in _PARTITIONS for r in p["regions"]), key=len)
URL_SUFFIX = max((p["dnsSuffix"] for p in _PARTITIONS), key=len)
ACCOUNT, STAGE = "123456789012", "p" + "r" * 15  # the longest Stage the template admits (checked below)
ROLE_NAME = "R" * 64  # CloudFormation names a role <stack>-<logical id>-<random>, cut to IAM's 64 characters


def _resolver(template: dict[str, Any], serverless: bool) -> Callable[[Any], str | None]:
    """Resolves the intrinsics the environments use to their longest values; any other intrinsic fails
    the test, naming it, so that nothing new slips past unmeasured."""
    refs = {"Stage": STAGE, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::URLSuffix": URL_SUFFIX,
            "AWS::Partition": PARTITION}
    conditions = {"UseServerless": serverless, "UseProvisioned": not serverless}

    def longest(key: str) -> str:
        assert key in refs, f"no worst case for {key}: teach this test its longest value"
        return refs[key]

    def resolve(node: Any) -> str | None:
        if isinstance(node, str | int | float):
            return str(node)
        (function, argument), = node.items()
        if function == "Ref":
            return None if argument == "AWS::NoValue" else longest(argument)
        if function == "Fn::GetAtt":
            return longest(argument if isinstance(argument, str) else ".".join(argument))
        if function == "Fn::If":
            return resolve(argument[1] if conditions[argument[0]] else argument[2])
        if function == "Fn::Sub" and isinstance(argument, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: longest(m.group(1)), argument)
        raise AssertionError(f"no worst case for {function} {argument!r}: teach this test its longest value")

    def name(logical: str, key: str) -> str:
        return resolve(template["Resources"][logical]["Properties"][key]) or ""

    def arn(service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"

    def host(logical: str, key: str, service: str) -> str:  # <id>.<12 random>.<region>.<service>.<suffix>
        return f"{name(logical, key)}.{'c' * 12}.{REGION}.{service}.{URL_SUFFIX}"

    uuid, random6 = "0" * 36, "AbCdEf"  # Secrets Manager appends -<6 random> to a secret's name in its ARN
    for logical, resource in template["Resources"].items():  # by type, so new resources are measured too
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue":
            refs[logical] = f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT}/{name(logical, 'QueueName')}"
        elif kind == "AWS::SecretsManager::Secret":
            refs[logical] = arn("secretsmanager", f"secret:{name(logical, 'Name')}-{random6}")
        elif kind == "AWS::RedshiftServerless::Workgroup":
            refs[logical] = name(logical, "WorkgroupName")
        elif kind == "AWS::IAM::Role":
            refs[logical] = ROLE_NAME
            refs[f"{logical}.Arn"] = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{ROLE_NAME}"
        elif kind == "AWS::S3::Bucket":  # a generated name: <stack>-<logical id, cut>-<13 random>, ≤ 63
            refs[logical] = "b" * 63
        elif kind == "AWS::RDS::DBInstance":  # the managed master secret is named rds!db-<uuid>
            refs.update({f"{logical}.Endpoint.Address": host(logical, "DBInstanceIdentifier", "rds"),
                         f"{logical}.Endpoint.Port": "65535",
                         f"{logical}.MasterUserSecret.SecretArn": arn("secretsmanager",
                                                                      f"secret:rds!db-{uuid}-{random6}")})
        elif kind == "AWS::Redshift::Cluster":  # managed secret: redshift!<cluster>-<admin user, up to 128>
            refs.update({f"{logical}.Endpoint.Address": host(logical, "ClusterIdentifier", "redshift"),
                         f"{logical}.MasterPasswordSecretArn": arn(
                             "secretsmanager", f"secret:redshift!{name(logical, 'ClusterIdentifier')}-"
                                               f"{'u' * 128}-{random6}")})
    return resolve


def test_every_function_environment_fits_4_kb(template: dict[str, Any]) -> None:
    """Lambda quotas, "Function environment variables: 4 KB": each function's variables, keys plus values
    in bytes, with every intrinsic at its longest (full RDS and Redshift hostnames, SQS URLs and secret
    ARNs in the longest partition, region and suffix, the longest Stage, 64-character role names), under
    either warehouse mode. The JSON of the whole map, a stricter count, fits too."""
    pattern = template["Parameters"]["Stage"]["AllowedPattern"]
    assert re.fullmatch(pattern, STAGE) and not re.fullmatch(pattern, STAGE + "x")
    sizes: dict[str, tuple[int, int]] = {}
    for name, properties in functions(template).items():
        for serverless in (True, False):
            resolve = _resolver(template, serverless)
            present = {key: value for key, raw in properties["Environment"]["Variables"].items()
                       if (value := resolve(raw)) is not None}
            summed = sum(len(key.encode()) + len(value.encode()) for key, value in present.items())
            sizes[name] = max(sizes.get(name, (0, 0)), (summed, len(json.dumps(present).encode())))
    print("\nfunction environments, worst case (keys+values B / JSON B): "
          + ", ".join(f"{name} {s} / {j}" for name, (s, j) in sizes.items()))
    assert len(sizes) == 5 and sizes["OpsFunction"][0] > 500  # hostnames, URLs and ARNs were measured
    assert all(s <= LAMBDA_ENVIRONMENT_BYTES and j <= LAMBDA_ENVIRONMENT_BYTES for s, j in sizes.values()), sizes


def largest_orders(count: int) -> list[Order]:
    """Valid orders at their widest in JSON: each of the 64 order_id characters a quote or a backslash
    (2 bytes once escaped; distinct per order), the largest customer_id, the longest type."""
    return [Order("".join('"' if i >> bit & 1 else "\\" for bit in range(64)), BIG,
                  max(orders_module.PIZZA_TYPES, key=len), 100, Decimal("999.99"), WHEN) for i in range(count)]


def test_a_packed_request_of_500_largest_orders_fits_an_sqs_message() -> None:
    """SQS message quotas, "Message size" (256 KiB before 2025): 500 orders at the largest valid field sizes
    pack into messages of at most 262,144 bytes, each within pack_messages' own MAX_MESSAGE_BYTES, and so
    does the whole request (ingest sends its messages in one SendMessageBatch, whose total has that limit).
    Past one request's worth, pack_messages' cap splits them."""
    orders = largest_orders(MAX_ORDERS_PER_REQUEST)
    messages = pack_messages(orders)
    sizes = [len(message.encode()) for message in messages]
    print(f"\n500 largest orders: {len(messages)} message(s) of {sizes} B "
          f"({max(sizes) / SQS_MESSAGE_BYTES:.0%} of 256 KiB); one order {len(orders[0].to_message())} B")
    assert len(orders[0].to_message()) > 250  # escaping doubled the order_id: really the widest
    assert [o.order_id for m in messages for o in orders_module.unpack_message(m)] == [o.order_id for o in orders]
    assert max(sizes) <= MAX_MESSAGE_BYTES <= SQS_MESSAGE_BYTES and sum(sizes) <= SQS_MESSAGE_BYTES
    split = pack_messages(largest_orders(4 * MAX_ORDERS_PER_REQUEST))
    assert len(split) > 1 and max(len(m.encode()) for m in split) <= MAX_MESSAGE_BYTES


class FakeConnection(SelfCursor):
    """A connection, and its own cursor, answering each query with `answer(sql, params)`'s rows."""

    def __init__(self, answer: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]) -> None:
        self.answer, self.rows = answer, []

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.rows = self.answer(" ".join(sql.split()), params)

    def fetchone(self) -> tuple[Any, ...]:
        return self.rows[0]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def commit(self) -> None:
        return None


class FakeQueue:
    def __init__(self, reason: str, body: Callable[[int], str] = lambda i: "") -> None:
        self.reason, self.body, self.limits = reason, body, []

    def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        """`limit` dead letters, each with a distinct reason of REASON_LIMIT characters."""
        self.limits.append(limit)
        return [DeadLetter(f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd", self.body(i),
                           f"{i:06d}" + self.reason * (REASON_LIMIT - 6), WHEN - timedelta(days=14), WHEN, BIG)
                for i in range(limit)]

    def stats(self) -> QueueStats:
        return QueueStats(BIG, BIG, BIG)


def reply_bytes(monkeypatch: pytest.MonkeyPatch, event: dict[str, Any], **fakes: Any) -> tuple[dict[str, Any], int]:
    """The ops function's real reply to `event` over fake stores, and its size as the runtime sends it."""
    for name, fake in fakes.items():
        monkeypatch.setattr(ops.env, name, lambda fake=fake: fake)
    result = ops.handler(event, None)
    assert "error" not in result, result
    return result, len(json.dumps(result, ensure_ascii=False).encode())


def test_dlq_list_at_its_largest_fits_a_synchronous_reply(monkeypatch: pytest.MonkeyPatch,
                                                           template: dict[str, Any]) -> None:
    """Lambda quotas, "Invocation payload: 6 MB (synchronous)": `txpipe dlq list` asks for at most 1,000;
    each dead letter has a distinct reason of REASON_LIMIT characters (ASCII, as the store writes them),
    and the reply also counts them by reason."""
    # Sizes are counted as the 3.12+ runtimes send them (UTF-8); an older runtime's \\u escapes would not fit.
    assert {p["Runtime"] for p in functions(template).values()} <= RUNTIMES_WITHOUT_ASCII_ESCAPES
    queue = FakeQueue("r")
    result, size = reply_bytes(monkeypatch, {"action": "dlq_list", "limit": DLQ_LIST_MAX}, queue=queue)
    print(f"\ndlq_list, {DLQ_LIST_MAX} dead letters with distinct {REASON_LIMIT}-character reasons: {size:,} B "
          f"({size / LAMBDA_SYNC_PAYLOAD_BYTES:.0%} of 6 MB)")
    assert DLQ_LIST_MAX == 1000 and queue.limits == [1000] and len(result["reasons"]) == result["listed"] == 1000
    assert size <= LAMBDA_SYNC_PAYLOAD_BYTES


def test_dlq_list_with_non_ascii_reasons_fits_a_synchronous_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with reasons of REASON_LIMIT 4-byte characters (a pydantic error quoting a non-ASCII body holds
    some): a reason is clipped to REASON_LIMIT bytes, and ops lists at most DLQ_LIST_LIMIT."""
    _, size = reply_bytes(monkeypatch, {"action": "dlq_list", "limit": DLQ_LIST_MAX}, queue=FakeQueue(ASTRAL))
    print(f"\ndlq_list with 4-byte-character reasons: {size:,} B")
    assert size <= LAMBDA_SYNC_PAYLOAD_BYTES


def test_dlq_show_of_the_largest_body_fits_a_synchronous_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda quotas, 6 MB synchronous reply: `dlq show` returns one dead letter's whole body, here SQS's
    current 1 MiB maximum made of characters JSON doubles (quotes), with a reason of REASON_LIMIT 4-byte
    characters, found last of the DLQ_SCAN_LIMIT it scans."""
    last = ops.DLQ_SCAN_LIMIT - 1
    queue = FakeQueue(ASTRAL, body=lambda i: '"' * SQS_MESSAGE_BYTES_NOW if i == last else "x")
    result, size = reply_bytes(monkeypatch, {"action": "dlq_show", "message_id": f"{last:08d}-aaaa-bbbb-cccc-"
                                                                                 "dddddddddddd"}, queue=queue)
    print(f"\ndlq_show, a 1 MiB body of quotes: {size:,} B ({size / LAMBDA_SYNC_PAYLOAD_BYTES:.0%} of 6 MB)")
    assert result["bytes"] == SQS_MESSAGE_BYTES_NOW and queue.limits == [ops.DLQ_SCAN_LIMIT]
    assert size <= LAMBDA_SYNC_PAYLOAD_BYTES


def test_rejected_page_at_its_limit_fits_a_synchronous_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda quotas, 6 MB synchronous reply: a `rejected` page is clamped to rejections.PAGE_LIMIT rows even
    when asked for more; each row holds the largest valid order and the longest reason the store writes."""
    # the conflict's reason names the kept order: at its longest, every field of that order at its widest
    reasons = (store.REASON_UNKNOWN_CUSTOMER, rejections.conflict_reason(store.REASON_CONFLICT, BIG, "meat lover", 100,
                                                                         Decimal("1000.00"), WHEN))
    limits: list[int] = []

    def answer(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if "GROUP BY reason" in sql:  # kind, pending, resolved, oldest and newest pending
            return [(reason, BIG, BIG, WHEN, WHEN) for reason in reasons]
        limits.append(params[-1])
        # each row listed with --all: resolved, so it carries when it was stored too
        return [(BIG - i, o.order_id, max(reasons, key=len), WHEN, o.to_message(), WHEN)
                for i, o in enumerate(largest_orders(params[-1]))]

    result, size = reply_bytes(monkeypatch, {"action": "rejected", "limit": 10**9, "all": True},
                               oltp=FakeConnection(answer))
    print(f"\nrejected page, {rejections.PAGE_LIMIT} largest rows: {size:,} B "
          f"({size / LAMBDA_SYNC_PAYLOAD_BYTES:.0%} of 6 MB)")
    assert limits == [rejections.PAGE_LIMIT] and len(result["rows"]) == rejections.PAGE_LIMIT
    assert size <= LAMBDA_SYNC_PAYLOAD_BYTES


def _largest_rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The reporting queries' rows, each column at its largest (bigint counts, wide numerics)."""
    huge = Decimal("9" * 20 + ".99")  # far beyond any real sales total, as bytes go
    states = [(code, "N" * 64, BIG, BIG, huge, huge, BIG) for code in sorted(reporting.STATE_CODES)]
    answers = (("SELECT max(refreshed_at)", [(WHEN,)]),
               ("SELECT (SELECT count(*) FROM orders_fact)", [(BIG,)]),
               ("FROM state_population p LEFT JOIN state_sales", states),
               ("FROM state_sales", [(BIG, huge, huge, BIG)]),
               ("PARTITION BY state", [(code, t, BIG, huge) for code in sorted(reporting.STATE_CODES)
                                       for t in orders_module.PIZZA_TYPES[:3]]),
               ("FROM sales_by_state", [(t, BIG, huge) for t in orders_module.PIZZA_TYPES][:3]),
               ("percentile_cont", [(BIG, 1e308, 1e308, 1e308, 1e308, BIG)]),
               ("SELECT finished_at, synced, pending", [(WHEN, BIG, BIG)]),
               ("SELECT max(finished_at)", [(WHEN,)]),
               ("count(*) FILTER (WHERE order_id LIKE", [(BIG, BIG)]),  # sla_report: orders, of them history
               ("count(*) FILTER (WHERE NOT h)", [(BIG, WHEN, BIG, BIG, WHEN, BIG, BIG)]),  # sla_report: the outbox
               ("SELECT count(*), min(accepted_at), sum(", [(BIG, WHEN - timedelta(days=3650), BIG)]),
               ("SELECT count(*), min(accepted_at)", [(BIG, WHEN)]),
               ("SELECT count(*)", [(BIG,)]))
    return next(rows for marker, rows in answers if marker in sql)


def test_report_sla_report_and_status_are_small_whatever_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda quotas, 6 MB synchronous reply: report, sla_report and status return a fixed set of fields
    whatever the tables hold (top 3 by their own SQL, percentiles, counts; at most the 51 states), here at
    the largest numbers; status with every store failing carries only a clipped first line of each error."""
    queries: list[str] = []
    database = FakeConnection(lambda sql, params: queries.append(sql) or _largest_rows(sql, params))
    stores = {"oltp": database, "warehouse": database, "queue": FakeQueue("r")}
    every = sorted(reporting.STATE_CODES) * 3  # a caller repeating states gets each once
    events = {"report (51 states)": {"action": "report", "states": every},
              "report --all": {"action": "report", "all": True},
              "sla_report": {"action": "sla_report", "sla_seconds": 1e8}, "status": {"action": "status"}}
    sizes = {name: reply_bytes(monkeypatch, event, **stores)[1] for name, event in events.items()}

    def broken() -> Any:
        raise RuntimeError(ASTRAL * 10_000 + "\nDETAIL: more")

    for name in stores:
        monkeypatch.setattr(ops.env, name, broken)
    failing, sizes["status (all failing)"] = reply_bytes(monkeypatch, {"action": "status"})
    print("\nops replies, worst case: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))
    assert any("FROM sales_by_state" in q and q.endswith("LIMIT 3") for q in queries), queries
    assert set(failing["errors"]) == {"oltp", "warehouse", "queue"}
    assert max(sizes.values()) <= 100_000  # far below 6 MB: nothing in them grows with the data


def test_api_body_cap_fits_api_gateway_and_a_synchronous_invoke() -> None:
    """API Gateway REST API quotas ("Payload size: 10 MB"; request line and headers at most 10,240 bytes)
    and Lambda's 6 MB synchronous request: the ingest function refuses bodies over MAX_BODY_BYTES (1 MiB)
    with 413; at that size the proxy event, its body base64-encoded (4/3) and the largest headers carried
    twice (headers and multiValueHeaders), fits 6 MB. So does a text-mode event (a REST API without binary
    media types), where JSON escaping at most triples a body (a 4-byte character as two \\u escapes)."""
    assert MAX_BODY_BYTES == 1_048_576 <= API_GATEWAY_PAYLOAD_BYTES
    with pytest.raises(orders_module.RequestRejected) as refused:  # enforced before any parsing
        orders_module.parse_json(b" " * (MAX_BODY_BYTES + 1))
    assert refused.value.status == 413
    headers = {"Content-Type": "application/json", "X-Fill": "h" * (API_GATEWAY_HEADER_BYTES - 64)}
    body = b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]"
    event = api_gateway_event("POST", "/orders", headers, body)
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == body
    base64_event = len(json.dumps(event).encode())
    text_event = max(len(json.dumps({**event, "isBase64Encoded": False, "body": text}).encode())
                     for text in ('"' * MAX_BODY_BYTES, ASTRAL * (MAX_BODY_BYTES // 4)))
    print(f"\ningest event for a 1 MiB body: base64 {base64_event:,} B, text {text_event:,} B "
          f"({max(base64_event, text_event) / LAMBDA_SYNC_PAYLOAD_BYTES:.0%} of 6 MB)")
    assert MAX_BODY_BYTES * 4 // 3 + 2 * len(headers["X-Fill"]) <= base64_event <= LAMBDA_SYNC_PAYLOAD_BYTES
    assert text_event <= LAMBDA_SYNC_PAYLOAD_BYTES

"""The AWS stack's monthly cost, read off the template: what `txpipe deploy --plan` prints before deploying.

Pure, no AWS calls. `estimate(template, parameters, orders_per_month)` evaluates the template's Conditions
against the parameters a deploy passes (a missing one takes its Default), so only resources that would exist
are priced, and resolves Ref, Fn::If, Fn::Sub... (resolve.py) where a price needs a property (how many
subnets, i.e. AZs, an interface endpoint spans; Interface or Gateway; instance class, node type, memory).
Prices are in prices.json beside this module: dated us-east-1 on-demand list prices, before free tiers. Every
resource type the template holds must have an entry there: a rule of this module (RULES), or `free` with the
reason.

The usage model (each Estimate lists it in its assumptions):
- a month is 730 hours; sync runs = 730 x 60 / SyncScheduleMinutes. A sync with nothing to move does not wake
  the warehouse, so wakes = min(runs, orders). Each wake bills max(60 s, the run's seconds) at the base
  capacity (RedshiftBaseCapacity RPU; scaling up is not modelled); a run is assumed to keep the warehouse
  30 s plus 1 s per 10,000 orders it moves. The daily refresh wakes it once a day for an assumed 120 s.
  RedshiftMonthlyRpuHours, the usage limit that turns compute off for the rest of the month, is a line of its
  own at no cost: the guard. Provisioned mode: node-hours x 730 instead.
- per order: one API request (point-of-sale clients post one order at a time: the worst case); one ingest
  invocation of 50 ms; one store invocation of 100 ms (at ~0.4 orders a second its 1-second batching window
  rarely gathers two); three SQS requests (send, receive, delete); 1,100 bytes of logs; 100 bytes of warehouse
  and of OLTP storage growth (the OLTP's fits in its allocated storage, which is billed whole).
- per sync run: one staged object PUT and read once by COPY; the sync function runs as long as the warehouse
  does and logs 2 KB (the refresh too). An idle SQS trigger long-polls with 5 pollers (20 s each).
- RDS and Redshift keep one managed admin secret each; one alarm per AWS::CloudWatch::Alarm; the sync's two
  custom metrics (OldestPendingSeconds, PendingOrders).
Not included: operator reads (status, report, dashboard, sync-now), data processed by interface endpoints
(only credential and secret calls cross them), the databases' log exports, RDS backups and Performance
Insights within their free retention, the artifacts bucket (tens of MB).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from lambdas.core.metrics import OLDEST_PENDING, PENDING
from txpipe_cli.aws.resolve import Resolver, Resource, as_text
from txpipe_cli.config import DEFAULT_ORDERS_PER_MONTH
from txpipe_cli.errors import TxpipeError

PRICES_FILE = "txpipe_cli/aws/prices.json"
SYNC_BASE_SECONDS, SYNC_ORDERS_PER_SECOND, REFRESH_SECONDS = 30.0, 10_000, 120.0
ORDER_SECONDS = {"ingest": 0.05, "store": 0.1}  # the functions invoked once per order, and for how long
# Per order: ingest's and store's invocations each log Lambda's START/END/REPORT lines (~300 B) and one structured
# line of what they did (~250 B: lambdas/core/log.py).
LOG_BYTES_PER_ORDER, LOG_BYTES_PER_RUN = 1_100, 2_000
SQS_REQUESTS_PER_ORDER, IDLE_POLLERS, LONG_POLL_SECONDS = 3, 5, 20
STORAGE_BYTES_PER_ORDER, GB, SECRETS = 100, 1e9, "Secrets Manager"


def load_prices() -> dict[str, Any]:
    return json.loads(resources.files("txpipe_cli.aws").joinpath("prices.json").read_text())


@dataclass(frozen=True)
class Line:
    part: str
    detail: str  # how it is computed, in plain words
    monthly_usd: float
    per_million_orders: float = 0.0  # the part of it that grows with orders, per million


@dataclass(frozen=True)
class Estimate:
    lines: list[Line]
    orders_per_month: int
    prices_date: str
    assumptions: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def per_million_orders(self) -> float:
        """What each further million orders a month adds (requests, invocations, logs, storage growth)."""
        return sum(line.per_million_orders for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"lines": [asdict(line) for line in self.lines], "total_usd": round(self.total, 2),
                "per_million_orders_usd": round(self.per_million_orders, 2),
                "orders_per_month": self.orders_per_month, "prices_date": self.prices_date,
                "assumptions": self.assumptions}


def local_estimate(orders_per_month: int = DEFAULT_ORDERS_PER_MONTH) -> Estimate:
    return Estimate([Line("local target", "it runs on this machine", 0.0)], orders_per_month,
                    load_prices()["date"], ["the local target runs on this machine: no cloud resources"])


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}".removesuffix(".0")


@dataclass(frozen=True)
class Usage:
    """The month's activity the model assumes (module docstring), and the prices."""

    orders: int
    sync_minutes: float
    prices: dict[str, Any]
    log_days: float  # the longest log group retention
    limit_rpu_hours: float | None  # RedshiftMonthlyRpuHours, where the template has it

    @property
    def hours(self) -> float:
        return self.prices["hours_per_month"]

    @property
    def runs(self) -> float:
        return self.hours * 60 / self.sync_minutes

    @property
    def run_seconds(self) -> float:
        return SYNC_BASE_SECONDS + self.orders / self.runs / SYNC_ORDERS_PER_SECOND

    @property
    def days(self) -> float:
        return self.hours / 24

    def usd(self, name: str) -> float:
        """The price of one unit: one request, one GB-month..."""
        entry = self.prices["prices"][name]
        return entry["usd"] / entry.get("per", 1)

    def usd_of(self, name: str, kind: str) -> float:
        """The hourly price of an instance class or node type, refused by name when the table lacks it."""
        table = self.prices["prices"][name]
        found = table.get("usd_by_type", table.get("usd_by_class", {}))
        if kind not in found:
            raise TxpipeError(f"no price for {kind} ({table['unit']}) in {PRICES_FILE}",
                              hint=f"add it under prices.{name}, from {table['source']}")
        return found[kind]


Rule = Callable[[list[Resource], Usage], list[Line]]


def redshift_workgroup(found: list[Resource], use: Usage) -> list[Line]:
    lines, price = [], use.usd("redshift_serverless_rpu_hour")
    minimum = use.prices["prices"]["redshift_serverless_rpu_hour"]["minimum_seconds"]
    billed, wakes = max(minimum, use.run_seconds), min(use.runs, use.orders)
    for workgroup in found:
        rpu = float(workgroup.get("BaseCapacity", 128))  # AWS's default base capacity
        sync, refresh = rpu * billed * wakes / 3600, rpu * REFRESH_SECONDS * use.days / 3600  # RPU-hours
        grows = billed > minimum and wakes == use.runs  # past the minimum, each order adds its share of a run
        lines += [Line("Redshift Serverless: sync", f"{_n(rpu)} RPU x "
                       f"{f'{minimum} s minimum' if billed == minimum else f'{billed:,.0f} s'} x {_n(wakes)} syncs",
                       sync * price, grows * rpu * 1e6 / SYNC_ORDERS_PER_SECOND / 3600 * price),
                  Line("Redshift Serverless: daily refresh",
                       f"{_n(rpu)} RPU x {REFRESH_SECONDS:g} s x {use.days:.1f} days", refresh * price)]
        limit = use.limit_rpu_hours
        if limit is not None:
            reached = "; reached at this volume: compute stops until the month ends" if sync + refresh > limit else ""
            lines.append(Line("Redshift Serverless: usage limit", f"compute stops at {_n(limit)} RPU-hours "
                              f"(${limit * price:,.2f}){reached}" if limit > 0 else "none", 0.0))
    return lines


def _storage(use: Usage) -> list[Line]:
    per_order = STORAGE_BYTES_PER_ORDER / GB * use.usd("redshift_managed_storage_gb_month")
    return [Line("Redshift managed storage", f"{_n(use.orders * STORAGE_BYTES_PER_ORDER / GB)} GB more each month "
                 f"({STORAGE_BYTES_PER_ORDER} B an order)", use.orders * per_order, per_order * 1e6)]


def _secret(what: str, use: Usage) -> Line:
    return Line(SECRETS, what, use.usd("secret_month"))


def redshift_namespace(found: list[Resource], use: Usage) -> list[Line]:
    return _storage(use) + [_secret("Redshift-managed admin", use) for ns in found if ns.true("ManageAdminPassword")]


def redshift_cluster(found: list[Resource], use: Usage) -> list[Line]:
    lines = _storage(use)
    for cluster in found:
        node, count = str(cluster.get("NodeType")), int(cluster.get("NumberOfNodes", 1))
        lines.append(Line("Redshift provisioned", f"{count} x {node} x {use.hours:g} h",
                          count * use.usd_of("redshift_node_hour", node) * use.hours))
        lines += [_secret("Redshift-managed admin", use)] * cluster.true("ManageMasterPassword")
    return lines


def rds_instance(found: list[Resource], use: Usage) -> list[Line]:
    lines = []
    for db in found:
        kind, gb = str(db.get("DBInstanceClass")), float(db.get("AllocatedStorage"))
        multi = db.true("MultiAZ")  # the table holds single-AZ prices: a multi-AZ one is refused, named
        lines += [Line("RDS PostgreSQL", f"{kind} {'multi' if multi else 'single'}-AZ x {use.hours:g} h",
                       use.usd_of("rds_postgresql_instance_hour", kind + " multi-AZ" * multi) * use.hours),
                  Line("RDS storage", f"{_n(gb)} GB gp3 allocated", gb * use.usd("rds_gp3_gb_month"))]
        lines += [_secret("RDS-managed admin", use)] * db.true("ManageMasterUserPassword")
    return lines


def vpc_endpoint(found: list[Resource], use: Usage) -> list[Line]:
    azs = [len(e.get("SubnetIds", [])) for e in found if e.get("VpcEndpointType", "Gateway") == "Interface"]
    each = f"{azs[0]} AZ" if len(set(azs)) == 1 else f"{sum(azs) / max(1, len(azs)):.1f} AZs"
    return [Line("interface VPC endpoints", f"{len(azs)} x {each} x {use.hours:g} h (gateway endpoints: free)",
                 sum(azs) * use.hours * use.usd("vpc_interface_endpoint_az_hour"))] * bool(azs)


def lambda_function(found: list[Resource], use: Usage) -> list[Line]:
    per_run = {"sync": (use.runs, use.run_seconds), "refresh": (use.days, REFRESH_SECONDS), "ops": (0, 0)}
    lines, names, logged, logged_per_order = [], set(), 0.0, 0.0
    for function in found:
        name = str(function.get("Handler", "")).removeprefix("lambdas.").removesuffix(".handler")
        gb, per_order = float(function.get("MemorySize", 128)) / 1024, name in ORDER_SECONDS
        if not per_order and name not in per_run:
            raise TxpipeError(f"no usage model for the function with handler {function.get('Handler')!r}",
                              hint=f"say how often it runs in {__name__}")
        names.add(name)
        if name == "ops":
            continue  # operator commands only: not included
        calls, seconds = (use.orders, ORDER_SECONDS[name]) if per_order else per_run[name]
        one = use.usd("lambda_request") + gb * seconds * use.usd("lambda_gb_second")
        # Per order: an invocation of its own, or (the sync) its share of a run's time.
        each_order = one if per_order else gb / SYNC_ORDERS_PER_SECOND * use.usd("lambda_gb_second") * (name == "sync")
        lines.append(Line(f"Lambda: {name}", f"{_n(calls)} invocations x {seconds * 1000:,.0f} ms x "
                          f"{gb * 1024:,.0f} MB", calls * one, each_order * 1e6))
        each = LOG_BYTES_PER_ORDER if per_order else LOG_BYTES_PER_RUN
        logged, logged_per_order = logged + calls * each, logged_per_order + each * per_order
    per_gb = use.usd("logs_ingested_gb") + min(1.0, use.log_days / use.days) * use.usd("logs_stored_gb_month")
    lines += [Line("CloudWatch Logs", f"{logged / GB:,.2f} GB ingested, kept {use.log_days:g} days",
                   logged / GB * per_gb, logged_per_order / GB * per_gb * 1e6)] * bool(lines)
    metrics = (OLDEST_PENDING, PENDING) if "sync" in names else ()  # its EMF line (lambdas/core/metrics.py)
    return lines + [Line("CloudWatch custom metrics", f"{len(metrics)}: {', '.join(metrics)}",
                         len(metrics) * use.usd("cloudwatch_metric_month"))] * bool(metrics)


def sqs_event_source(found: list[Resource], use: Usage) -> list[Line]:
    idle = len(found) * IDLE_POLLERS * use.hours * 3600 / LONG_POLL_SECONDS
    per_order = SQS_REQUESTS_PER_ORDER * use.usd("sqs_request")
    return [Line("SQS", f"{SQS_REQUESTS_PER_ORDER} requests an order (send, receive, delete) + {_n(idle)} idle polls",
                 use.orders * per_order + idle * use.usd("sqs_request"), per_order * 1e6)] * bool(found)


def rest_api(found: list[Resource], use: Usage) -> list[Line]:
    each = use.usd("api_gateway_rest_request")
    return [Line("API Gateway (REST)", f"{_n(use.orders)} requests, one order each", use.orders * each,
                 each * 1e6) for _ in found]


def schedule(found: list[Resource], use: Usage) -> list[Line]:
    runs = 0.0
    for item in found:
        expression = str(item.get("ScheduleExpression", ""))
        rate = re.fullmatch(r"rate\((\d+) minutes?\)", expression)
        if not rate and not re.fullmatch(r"cron\(\d+ \d+ [*?] \* [*?](?: \*)?\)", expression):  # not daily
            raise TxpipeError(f"cannot count the runs of the schedule {expression!r}", hint=f"teach {__name__} it")
        runs += use.hours * 60 / int(rate.group(1)) if rate else use.days
    return [Line("EventBridge Scheduler", f"{_n(runs)} invocations", runs * use.usd("scheduler_invocation"))] \
        * bool(found)


def alarm(found: list[Resource], use: Usage) -> list[Line]:
    return [Line("CloudWatch alarms", f"{len(found)} alarms", len(found) * use.usd("cloudwatch_alarm_month"))] \
        * bool(found)


def secret(found: list[Resource], use: Usage) -> list[Line]:
    return [_secret("the stack's own", use) for _ in found]


def staging_bucket(found: list[Resource], use: Usage) -> list[Line]:
    return [Line("S3 staging", f"{_n(use.runs)} PUT + {_n(use.runs)} GET (a batch staged per sync)",
                 use.runs * (use.usd("s3_put") + use.usd("s3_get")))] * bool(found)


RULES: dict[str, Rule] = {
    "redshift_workgroup": redshift_workgroup, "redshift_namespace": redshift_namespace,
    "redshift_cluster": redshift_cluster, "rds_instance": rds_instance, "vpc_endpoint": vpc_endpoint,
    "lambda_function": lambda_function, "sqs_event_source": sqs_event_source, "rest_api": rest_api,
    "schedule": schedule, "alarm": alarm, "secret": secret, "staging_bucket": staging_bucket,
}


def _entry(resource_type: str, prices: dict[str, Any]) -> dict[str, Any] | None:
    kind = "AWS::CloudFormation::CustomResource" if resource_type.startswith("Custom::") else resource_type
    entry = prices["resources"].get(kind)
    return entry if entry and (entry.get("rule") in RULES or entry.get("free")) else None


def unpriced(template: dict[str, Any], prices: dict[str, Any]) -> list[str]:
    """The template's resource types, whatever its conditions, without a price entry (a known rule or free)."""
    return sorted({r["Type"] for r in template.get("Resources", {}).values() if not _entry(r["Type"], prices)})


def estimate(template: dict[str, Any], parameters: dict[str, str], orders_per_month: int,
             prices: dict[str, Any] | None = None) -> Estimate:
    """The month's cost of what this template makes under these parameters (the module docstring says how)."""
    prices = prices or load_prices()
    missing = unpriced(template, prices)
    if missing:
        raise TxpipeError(f"no price entry for {', '.join(missing)} in {PRICES_FILE}",
                          hint=f"add a rule of {__name__} or `free` with the reason")
    resolver = Resolver(template, parameters)
    found: dict[str, list[Resource]] = {}
    for resource in template.get("Resources", {}).values():
        if "Condition" not in resource or resolver.condition(resource["Condition"]):  # it would exist
            rule = _entry(resource["Type"], prices).get("rule")
            found.setdefault(rule or resource["Type"], []).append(Resource(resource.get("Properties", {}), resolver))
    minutes, limit = resolver.params.get("SyncScheduleMinutes"), resolver.params.get("RedshiftMonthlyRpuHours")
    if minutes in (None, ""):
        raise TxpipeError("cannot price the stack: no SyncScheduleMinutes in the template or the parameters")
    retention = [float(group.get("RetentionInDays", 3653)) for group in found.get("AWS::Logs::LogGroup", [])]
    use = Usage(orders_per_month, float(as_text(minutes)), prices,
                max(retention, default=prices["hours_per_month"] / 24),
                None if limit in (None, "") else float(as_text(limit)))
    lines = [line for name, rule in RULES.items() if name in found for line in rule(found[name], use)]
    secrets = [line for line in lines if line.part == SECRETS]
    lines = [line for line in lines if line.part != SECRETS] + [Line(
        SECRETS, f"{len(secrets)} secrets: {', '.join(line.detail for line in secrets)}",
        sum(line.monthly_usd for line in secrets))] * bool(secrets)
    return Estimate(lines, orders_per_month, prices["date"], _assumptions(use))


def _assumptions(use: Usage) -> list[str]:
    return [
        f"{use.prices['region']} on-demand list prices of {use.prices['date']}, before free tiers",
        f"a month is {use.hours:g} hours; a sync every {use.sync_minutes:g} min is {_n(use.runs)} runs; a run with "
        "nothing to move does not wake the warehouse (wakes = the fewer of runs and orders)",
        f"a sync keeps the warehouse {SYNC_BASE_SECONDS:g} s plus 1 s per {SYNC_ORDERS_PER_SECOND:,} orders it "
        "moves, billed at least 60 s a wake at the base capacity (scaling up is not modelled)",
        f"the daily view refresh wakes the warehouse once a day for {REFRESH_SECONDS:g} s",
        "one order per API request (point-of-sale clients post one at a time: the worst case); per order one "
        f"ingest ({ORDER_SECONDS['ingest'] * 1000:g} ms) and one store ({ORDER_SECONDS['store'] * 1000:g} ms) "
        f"invocation, {SQS_REQUESTS_PER_ORDER} SQS requests and {LOG_BYTES_PER_ORDER} B of logs",
        f"{STORAGE_BYTES_PER_ORDER} B of warehouse and of OLTP storage per order (the OLTP's fits in its "
        "allocated storage, billed whole)",
        "not included: operator reads (status, report, dashboard, sync-now), data processed by interface "
        "endpoints, the databases' log exports, RDS backups within their free retention, the artifacts bucket",
    ]

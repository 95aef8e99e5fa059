"""The monthly cost estimate (txpipe_cli/aws/pricing.py): the default stack within its budget, every resource type
priced, and each line moving with its parameter exactly as the price table (txpipe_cli/aws/prices.json) says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import resolved_template
from txpipe_cli.aws.planner import template_parameters
from txpipe_cli.aws.pricing import Estimate, estimate, load_prices, unpriced
from txpipe_cli.config import DEFAULT_SLA_SECONDS, PipelineSettings, default_sync_every
from txpipe_cli.errors import TxpipeError

BUDGET_USD = 150.0  # issue 14: the default stack meets the SLA for this much a month at 1 M orders
MILLION = 1_000_000
PRICES = load_prices()


def price(name: str) -> float:
    entry = PRICES["prices"][name]
    return entry["usd"] / entry.get("per", 1)


def default_parameters(**extra: str) -> dict[str, str]:
    """What a first `txpipe deploy --target aws` passes, with no flag given (plus any --param)."""
    settings = PipelineSettings(sync_every_seconds=default_sync_every("aws", DEFAULT_SLA_SECONDS))
    return template_parameters("dev", settings, "bucket", "key", dict(extra))


def line(found: Estimate, part: str) -> float:
    [usd] = [item.monthly_usd for item in found.lines if item.part == part]
    return usd


def shown(found: Estimate) -> str:
    return "\n".join(f"  {item.part}: {item.detail}: ${item.monthly_usd:,.2f}" for item in found.lines)


def test_the_default_stack_costs_at_most_the_budget_at_a_million_orders() -> None:
    """infra/template.json as a first deploy sets it up, 1 M orders a month, us-east-1 list prices."""
    found = estimate(resolved_template(), default_parameters(), MILLION)
    assert found.total <= BUDGET_USD, f"the default stack costs ${found.total:,.2f} a month:\n{shown(found)}"
    assert found.orders_per_month == MILLION and found.prices_date == PRICES["date"]
    assert 0 < found.per_million_orders < found.total


def test_every_resource_type_of_the_template_has_a_price_entry() -> None:
    """Each type in infra/template.json, whatever the conditions, has a rule or `free` with its reason."""
    template = resolved_template()
    assert unpriced(template, PRICES) == [], "add these to txpipe_cli/aws/prices.json"
    for kind in {resource["Type"] for resource in template["Resources"].values()}:
        entry = PRICES["resources"][kind]
        assert entry.get("rule") or len(entry.get("free", "")) > 10, f"{kind}: a rule, or free with the reason"


def test_a_type_without_a_price_entry_fails_naming_it() -> None:
    """The check can fail: an unknown type (or an entry whose rule this module lacks) stops the estimate."""
    template = {"Parameters": {"SyncScheduleMinutes": {"Type": "Number", "Default": 13}},
                "Resources": {"Nat": {"Type": "AWS::EC2::NatGateway"}, "Queue": {"Type": "AWS::SQS::Queue"}}}
    assert unpriced(template, PRICES) == ["AWS::EC2::NatGateway"]
    with pytest.raises(TxpipeError, match=r"AWS::EC2::NatGateway in txpipe_cli/aws/prices\.json"):
        estimate(template, {}, MILLION)
    broken = {**PRICES, "resources": {**PRICES["resources"], "AWS::SQS::Queue": {"rule": "no_such_rule"}}}
    assert unpriced(template, broken) == ["AWS::EC2::NatGateway", "AWS::SQS::Queue"]


def sync_line(**parameters: str) -> float:
    return line(estimate(resolved_template(), default_parameters(**parameters), MILLION), "Redshift Serverless: sync")


def test_the_sync_schedule_moves_the_warehouse_line_as_the_price_table_says() -> None:
    """Each run that finds orders bills the base capacity for the 60-second minimum: runs = 730 h x 60 / minutes."""
    rpu = float(resolved_template()["Parameters"]["RedshiftBaseCapacity"]["Default"])
    rpu_hour = PRICES["prices"]["redshift_serverless_rpu_hour"]
    each_run = rpu * rpu_hour["minimum_seconds"] / 3600 * rpu_hour["usd"]
    runs = {minutes: PRICES["hours_per_month"] * 60 / minutes for minutes in (5, 13)}
    assert sync_line(SyncScheduleMinutes="5") - sync_line(SyncScheduleMinutes="13") == pytest.approx(
        each_run * (runs[5] - runs[13]), rel=1e-12)
    assert sync_line(SyncScheduleMinutes="13") == pytest.approx(each_run * runs[13], rel=1e-12)


def test_the_base_capacity_moves_the_warehouse_line_as_the_price_table_says() -> None:
    """Twice the RPUs, twice the bill: 4 more RPU cost 4 x 60 s x runs at the RPU-hour price."""
    minutes = float(default_parameters()["SyncScheduleMinutes"])
    rpu_hour = PRICES["prices"]["redshift_serverless_rpu_hour"]
    runs = PRICES["hours_per_month"] * 60 / minutes
    expected = 4 * rpu_hour["minimum_seconds"] / 3600 * rpu_hour["usd"] * runs
    assert sync_line(RedshiftBaseCapacity="8") - sync_line(RedshiftBaseCapacity="4") == pytest.approx(expected,
                                                                                                      rel=1e-12)


def test_provisioned_mode_prices_node_hours() -> None:
    """A provisioned cluster runs all month: node-hours x 730, and no serverless line."""
    found = estimate(resolved_template(), default_parameters(WarehouseMode="provisioned",
                                                             RedshiftNodeType="ra3.xlplus"), MILLION)
    hourly = PRICES["prices"]["redshift_node_hour"]["usd_by_type"]["ra3.xlplus"]
    assert line(found, "Redshift provisioned") == pytest.approx(hourly * PRICES["hours_per_month"])
    assert not [item for item in found.lines if item.part.startswith("Redshift Serverless")]


@pytest.mark.parametrize(("parameter", "value"), [("DbInstanceClass", "db.r6g.large"),
                                                  ("RedshiftNodeType", "dc2.large")])
def test_a_missing_instance_price_is_refused_naming_it_and_the_file(parameter: str, value: str) -> None:
    """An instance class or node type the table lacks stops the estimate, saying which and where to add it."""
    with pytest.raises(TxpipeError) as raised:
        estimate(resolved_template(), default_parameters(WarehouseMode="provisioned", **{parameter: value}), MILLION)
    assert value in raised.value.line() and "txpipe_cli/aws/prices.json" in raised.value.line()


def small_template(**defaults: Any) -> dict[str, Any]:
    """A template of the shapes the real one uses: parameters, nested conditions and Fn::If subnet lists."""
    parameters = {"SyncScheduleMinutes": 13, "RedshiftBaseCapacity": 4, "RedshiftMonthlyRpuHours": 400,
                  "EndpointAzCount": 1, "ExistingVpcId": "", "WarehouseMode": "serverless", **defaults}
    subnets = {"Fn::If": ["OneAz", [{"Ref": "A"}], {"Fn::If": ["TwoAzs", [{"Ref": "A"}, {"Ref": "B"}],
                                                               [{"Ref": "A"}, {"Ref": "B"}, {"Ref": "C"}]]}]}
    interface = {"Type": "AWS::EC2::VPCEndpoint", "Condition": "CreateNetwork",
                 "Properties": {"VpcEndpointType": "Interface", "SubnetIds": subnets}}
    return {
        "Parameters": {name: {"Type": "String", "Default": value} for name, value in parameters.items()},
        "Conditions": {
            "CreateNetwork": {"Fn::Equals": [{"Ref": "ExistingVpcId"}, ""]},
            "UseServerless": {"Fn::Equals": [{"Ref": "WarehouseMode"}, "serverless"]},
            "OneAz": {"Fn::Equals": [{"Ref": "EndpointAzCount"}, 1]},
            "TwoAzs": {"Fn::Equals": [{"Ref": "EndpointAzCount"}, "2"]},
            "ServerlessEndpoint": {"Fn::And": [{"Condition": "CreateNetwork"}, {"Condition": "UseServerless"}]},
            "NotServerless": {"Fn::Not": [{"Condition": "UseServerless"}]},
            "Never": {"Fn::Or": [{"Condition": "NotServerless"}, {"Fn::Equals": ["a", "b"]}]},
        },
        "Resources": {
            "Sqs": interface, "Secrets": interface, "Warehouse": {**interface, "Condition": "ServerlessEndpoint"},
            "S3": {"Type": "AWS::EC2::VPCEndpoint", "Condition": "CreateNetwork",
                   "Properties": {"VpcEndpointType": "Gateway"}},
            "Workgroup": {"Type": "AWS::RedshiftServerless::Workgroup", "Condition": "UseServerless",
                          "Properties": {"BaseCapacity": {"Ref": "RedshiftBaseCapacity"}}},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Condition": "Never"},
        },
    }


@pytest.mark.parametrize(("azs", "existing_vpc", "endpoints"), [("1", "", 3), ("2", "", 3), ("3", "", 3),
                                                                 ("3", "vpc-0abc", 0)])
def test_interface_endpoints_are_priced_per_az_they_span(azs: str, existing_vpc: str, endpoints: int) -> None:
    """Interface endpoints x the AZs each spans (Fn::If on conditions) x 730 h; the gateway one is free; an existing
    VPC gets none; a resource whose condition is false (Fn::Or, Fn::Not, Condition references) is not priced."""
    found = estimate(small_template(), {"EndpointAzCount": azs, "ExistingVpcId": existing_vpc}, MILLION)
    expected = endpoints * int(azs) * PRICES["hours_per_month"] * price("vpc_interface_endpoint_az_hour")
    parts = [item.part for item in found.lines]
    assert (line(found, "interface VPC endpoints") if endpoints else 0.0) == pytest.approx(expected)
    assert ("interface VPC endpoints" in parts) == bool(endpoints) and "CloudWatch alarms" not in parts


def test_the_usage_limit_is_shown_as_the_guard_at_no_cost() -> None:
    """RedshiftMonthlyRpuHours is a line of its own: where compute stops, and what that much costs."""
    found = estimate(small_template(), {"RedshiftMonthlyRpuHours": "300"}, MILLION)
    [guard] = [item for item in found.lines if item.part == "Redshift Serverless: usage limit"]
    assert guard.monthly_usd == 0.0
    assert guard.detail == f"compute stops at 300 RPU-hours (${300 * price('redshift_serverless_rpu_hour'):,.2f})"
    starved = estimate(small_template(), {"RedshiftMonthlyRpuHours": "10"}, MILLION)
    assert "compute stops until the month ends" in [i for i in starved.lines if "limit" in i.part][0].detail


def test_a_quiet_month_wakes_the_warehouse_once_per_order_at_most() -> None:
    """A sync with nothing to move does not wake the warehouse: 100 orders, at most 100 wakes."""
    found = estimate(small_template(), {}, 100)
    rpu_hour = PRICES["prices"]["redshift_serverless_rpu_hour"]
    assert line(found, "Redshift Serverless: sync") == pytest.approx(
        100 * 4 * rpu_hour["minimum_seconds"] / 3600 * rpu_hour["usd"])


def test_the_cost_per_million_orders_is_what_a_further_million_adds() -> None:
    """Above one order per sync run the warehouse bill stays; the rest grows by per_million_orders a million."""
    one, two = (estimate(resolved_template(), default_parameters(), n * MILLION) for n in (1, 2))
    assert two.total - one.total == pytest.approx(one.per_million_orders, rel=1e-9)
    assert one.to_dict()["per_million_orders_usd"] == round(one.per_million_orders, 2)
    assert one.to_dict()["total_usd"] == round(one.total, 2) and one.to_dict()["assumptions"] == one.assumptions


def test_the_readme_shows_the_default_estimate_as_printed() -> None:
    """README's "What it costs" table is the default estimate at 1 M orders, line by line, and its total."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = estimate(resolved_template(), default_parameters(), MILLION)
    rows = [f"| {item.part} | {item.detail} | {item.monthly_usd:,.2f} |" for item in found.lines]
    section = readme[readme.index("**What it costs.**"):readme.index("**Tearing down.**")]
    assert [row for row in section.splitlines() if row in rows] == rows, "README: paste the estimate again"
    assert f"| **total** | | **{found.total:,.2f}** |" in section
    assert f"**${found.per_million_orders:,.2f}**" in section

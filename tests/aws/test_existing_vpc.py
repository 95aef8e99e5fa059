"""Deploying into an existing VPC: its subnets and routes are read (moto's EC2, through boto3) and what could
not work is refused before anything is created (txpipe_cli/aws/network.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from txpipe_cli.aws import network
from txpipe_cli.errors import TxpipeError

REGION = "us-east-1"
INTERFACE_SERVICES = {"serverless": ("sqs", "secretsmanager", "redshift-serverless"),
                      "provisioned": ("sqs", "secretsmanager", "redshift")}


@pytest.fixture
def ec2(aws: None) -> Iterator[Any]:
    yield boto3.client("ec2", region_name=REGION)


def vpc_with_subnets(ec2: Any, zones: int) -> tuple[str, list[str], str]:
    """A VPC with one private subnet per AZ on one route table; (vpc, subnets, route table)."""
    vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:zones]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"172.31.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
               for i, az in enumerate(azs)]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    for subnet in subnets:
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return vpc, subnets, table


def add_nat(ec2: Any, vpc: str, table: str) -> None:
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.200.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)


def add_endpoints(ec2: Any, vpc: str, subnets: list[str], table: str, services: tuple[str, ...]) -> None:
    for service in services:
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.{service}", VpcEndpointType="Interface",
                                SubnetIds=subnets[:1], PrivateDnsEnabled=True)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[table])


def test_a_vpc_with_a_nat_in_three_azs_passes(ec2: Any) -> None:
    vpc, subnets, table = vpc_with_subnets(ec2, 3)
    add_nat(ec2, vpc, table)
    assert network.existing_vpc_problems(ec2, REGION, vpc, subnets, "serverless") == []


@pytest.mark.parametrize("warehouse", ["serverless", "provisioned"])
def test_a_vpc_with_the_endpoints_the_functions_call_passes(ec2: Any, warehouse: str) -> None:
    vpc, subnets, table = vpc_with_subnets(ec2, 3)
    add_endpoints(ec2, vpc, subnets, table, INTERFACE_SERVICES[warehouse])
    assert network.existing_vpc_problems(ec2, REGION, vpc, subnets, warehouse) == []


def test_a_vpc_without_routes_names_each_missing_service_and_who_calls_it(ec2: Any) -> None:
    vpc, subnets, _ = vpc_with_subnets(ec2, 3)
    problems = network.existing_vpc_problems(ec2, REGION, vpc, subnets, "serverless")
    missing = {p.split(" have no route to ")[1].split(" ")[0] for p in problems}
    assert missing == {"sqs", "secretsmanager", "redshift-serverless", "s3"}, problems
    assert any("redshift-serverless (called by sync, refresh, ops)" in p for p in problems), problems
    assert any("s3 (called by sync, the warehouse (COPY" in p for p in problems), problems


def test_one_missing_endpoint_is_named_alone(ec2: Any) -> None:
    vpc, subnets, table = vpc_with_subnets(ec2, 3)
    add_endpoints(ec2, vpc, subnets, table, ("sqs", "redshift-serverless"))
    problems = network.existing_vpc_problems(ec2, REGION, vpc, subnets, "serverless")
    assert len(problems) == 1 and "secretsmanager (called by ops)" in problems[0], problems


def test_serverless_needs_three_azs_a_cluster_two(ec2: Any) -> None:
    """Redshift Serverless: at least three subnets in three AZs
    (https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-usage-considerations.html)."""
    vpc, subnets, table = vpc_with_subnets(ec2, 2)
    add_nat(ec2, vpc, table)
    assert network.existing_vpc_problems(ec2, REGION, vpc, subnets, "provisioned") == []
    problems = network.existing_vpc_problems(ec2, REGION, vpc, subnets, "serverless")
    assert problems and "span 2 Availability Zones" in problems[0] and "needs 3" in problems[0]


def test_fewer_subnet_ids_than_azs_needed_are_refused_before_any_call() -> None:
    with pytest.raises(TxpipeError, match="names 2 subnet.*needs 3"):
        network.check_subnet_ids(["subnet-a", "subnet-b"], "serverless")
    network.check_subnet_ids(["subnet-a", "subnet-b"], "provisioned")


def test_the_s3_prefix_list_is_the_regions_managed_one(ec2: Any) -> None:
    found = network.s3_prefix_list(ec2, REGION)
    lists = ec2.describe_managed_prefix_lists()["PrefixLists"]
    assert {pl["PrefixListName"] for pl in lists if pl["PrefixListId"] == found} == {f"com.amazonaws.{REGION}.s3"}

"""The functions' routes to the AWS APIs they call, read from a VPC before anything is deployed into it.

A function in a VPC reaches an AWS API only through an interface endpoint of that service (with private DNS,
so the SDK's usual host name resolves to it), a gateway endpoint (S3) in its subnet's route table, or a NAT.
What each function calls is declared once, in lambdas/functions.py. The stack's own VPC brings those routes
(infra/template.yaml; tests/aws/test_reachability.py holds it to the declaration). An existing VPC
(`--param ExistingVpcId=...`) brings its own, so `txpipe deploy` (and `--plan`) and `txpipe doctor` read it
first, with describe calls only, and refuse in one line what could not work: subnets in fewer Availability
Zones than the warehouse needs, or a service some function calls with no route from the subnets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lambdas.functions import FUNCTIONS
from txpipe_cli.errors import TxpipeError
from txpipe_cli.humanize import plural

# Redshift Serverless wants subnets in at least three AZs; an RDS subnet group (and a cluster's) two.
# https://docs.aws.amazon.com/redshift/latest/mgmt/serverless-usage-considerations.html
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_VPC.WorkingWithRDSInstanceinaVPC.html
MIN_AZS = {"serverless": 3, "provisioned": 2}
# With enhanced VPC routing the warehouse's COPY reads S3 through the VPC.
# https://docs.aws.amazon.com/redshift/latest/mgmt/enhanced-vpc-routing.html
WAREHOUSE_CALLS = {"s3": "the warehouse (COPY of the staged batches)"}


def needed_services(warehouse: str) -> dict[str, list[str]]:
    """service -> who calls it from inside the VPC, for this warehouse mode (serverless or provisioned)."""
    needed: dict[str, list[str]] = {}
    for function in FUNCTIONS.values():
        if function.in_vpc:
            for call in function.calls_for(warehouse):
                needed.setdefault(call.service, []).append(function.name)
    for service, who in WAREHOUSE_CALLS.items():
        needed.setdefault(service, []).append(who)
    return needed


def endpoint_service(region: str, service: str) -> str:
    return f"com.amazonaws.{region}.{service}"


def s3_prefix_list(ec2: Any, region: str) -> str:
    """The id of the region's AWS-managed S3 prefix list, the destination the security groups let HTTPS out to."""
    name = endpoint_service(region, "s3")
    found = ec2.describe_managed_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": [name]}])
    lists = found.get("PrefixLists", [])
    if not lists:
        raise TxpipeError(f"no AWS-managed prefix list {name} in {region}",
                          hint="pass it with --param S3PrefixListId=pl-... (aws ec2 describe-managed-prefix-lists)")
    return lists[0]["PrefixListId"]


def check_subnet_ids(subnet_ids: Sequence[str], warehouse: str) -> None:
    """Refuses, before any AWS call, fewer subnets than the warehouse needs Availability Zones."""
    ids = [s for s in subnet_ids if s]
    need = MIN_AZS.get(warehouse, 3)
    if len(ids) < need:
        raise TxpipeError(f"ExistingSubnetIds names {plural(len(ids), 'subnet')}; the {warehouse} warehouse needs "
                          f"{need} in {need} Availability Zones",
                          hint=f"--param ExistingSubnetIds=subnet-a,subnet-b{',subnet-c' if need > 2 else ''} "
                               "(private subnets of ExistingVpcId, one per AZ)")


def existing_vpc_problems(ec2: Any, region: str, vpc_id: str, subnet_ids: Sequence[str],
                          warehouse: str) -> list[str]:
    """What keeps the stack from working in an existing VPC, one line each (none: it can)."""
    from botocore.exceptions import ClientError

    ids = [s for s in subnet_ids if s]
    try:
        subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
    except ClientError as exc:
        return [f"the subnets {', '.join(ids)} cannot be read: {exc.response.get('Error', {}).get('Message', exc)}"]
    problems = [f"subnet {s['SubnetId']} is in {s['VpcId']}, not {vpc_id}" for s in subnets if s["VpcId"] != vpc_id]
    zones = {s["AvailabilityZone"] for s in subnets}
    need = MIN_AZS.get(warehouse, 3)
    if len(zones) < need:
        problems.append(f"the subnets span {plural(len(zones), 'Availability Zone')} ({', '.join(sorted(zones))}); the "
                        f"{warehouse} warehouse needs {need}")
    tables = _route_tables(ec2, vpc_id, ids)
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    for service, callers in needed_services(warehouse).items():
        name = endpoint_service(region, service)
        unrouted = [subnet for subnet in ids if not _routed(name, tables.get(subnet, {}), endpoints)]
        if unrouted:
            fix = ("a gateway endpoint on their route tables" if service == "s3"
                   else "an interface endpoint with private DNS")
            which = f"subnet {unrouted[0]} has" if len(unrouted) == 1 else f"subnets {', '.join(unrouted)} have"
            problems.append(f"{which} no route to {service} (called by {', '.join(callers)}): add a NAT gateway "
                            f"route (0.0.0.0/0) or {fix} for {name}")
    return problems


def _route_tables(ec2: Any, vpc_id: str, subnet_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """subnet -> its route table: the one associated with it, else the VPC's main table."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), {})
    explicit = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
    return {subnet: explicit.get(subnet, main) for subnet in subnet_ids}


def _routed(service_name: str, table: dict[str, Any], endpoints: list[dict[str, Any]]) -> bool:
    if any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("NatGatewayId") and r.get("State") != "blackhole"
           for r in table.get("Routes", [])):
        return True
    for endpoint in endpoints:
        if endpoint.get("ServiceName") != service_name or endpoint.get("State", "available").lower() != "available":
            continue
        kind = endpoint.get("VpcEndpointType")
        if kind == "Interface" and endpoint.get("PrivateDnsEnabled"):
            return True  # private DNS answers for the whole VPC: every subnet reaches it
        if kind == "Gateway" and table.get("RouteTableId") in endpoint.get("RouteTableIds", []):
            return True
    return False

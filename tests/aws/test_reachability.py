"""Every function can reach every AWS API it calls, and the warehouse can reach S3 for COPY: read from the
template, against what lambdas/functions.py declares each function calls (the tests' recording of every AWS
call holds the code to that declaration: tests/support/aws_calls.py).

No emulator checks routes, so this reads them. In the stack's own VPC a call is routed when
- an interface endpoint of the service with private DNS is in the VPC, its security group admits 443 from the
  functions' group, and the functions' group lets 443 out to the endpoint's group, or
- for S3, a gateway endpoint sits on the route table of each of the function's subnets and the functions'
  group lets 443 out to S3's prefix list
(https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html,
https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html,
https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc-internet.html). A database is reached when the
functions' group lets its port out to the database's group and that group admits it from the functions'. The
warehouse reads S3 for COPY through the VPC (enhanced VPC routing): its group lets 443 out to S3's prefix list
and its subnets' route table holds the gateway endpoint
(https://docs.aws.amazon.com/redshift/latest/mgmt/enhanced-vpc-routing.html). In an existing VPC the routes are
the VPC's own: deploy reads them first (txpipe_cli/aws/network.py, tests/aws/test_existing_vpc.py); the
template must then let the functions' HTTPS out.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra import resolved_template
from lambdas.functions import FUNCTIONS
from txpipe_cli.aws.resolve import Resolver

REGION = "us-east-1"  # the resolver's AWS::Region
PREFIX_LIST = "pl-0123456789abcdef0"
PORTS = {"oltp": (5432, "DatabaseSecurityGroup"), "warehouse": (5439, "WarehouseSecurityGroup")}
FUNCTION_SG = "<FunctionSecurityGroup>"


def parameters(network: str, warehouse: str) -> dict[str, str]:
    given = {"CodeBucket": "b", "CodeKey": "k", "S3PrefixListId": PREFIX_LIST, "WarehouseMode": warehouse}
    if network == "existing":
        given.update(ExistingVpcId="vpc-0abc", ExistingSubnetIds="subnet-a,subnet-b,subnet-c")
    return given


class Stack:
    """The template's resources that exist under the parameters, their properties resolved."""

    def __init__(self, template: dict[str, Any], given: dict[str, str]) -> None:
        self.resolver = Resolver(template, given)
        self.resources = {name: body for name, body in template["Resources"].items()
                          if "Condition" not in body or self.resolver.condition(body["Condition"])}

    def props(self, name: str) -> dict[str, Any]:
        return self.resolver.value(self.resources[name].get("Properties", {}))

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: self.props(name) for name, body in self.resources.items() if body["Type"] == kind}

    def rules(self, group: str, direction: str) -> list[dict[str, Any]]:
        """A security group's rules in one direction (Egress or Ingress): inline and as resources of their own."""
        inline = self.props(group).get(f"SecurityGroup{direction}", [])
        separate = [p for p in self.of_type(f"AWS::EC2::SecurityGroup{direction}").values()
                    if p.get("GroupId") == f"<{group}>"]
        return inline + separate

    def allows(self, group: str, direction: str, port: int, peer_key: str, peer: str) -> bool:
        return any(int(r.get("FromPort", -1)) <= port <= int(r.get("ToPort", -1)) and r.get(peer_key) == peer
                   and r.get("IpProtocol") in ("tcp", "6") for r in self.rules(group, direction))

    def function_props(self, name: str) -> dict[str, Any]:
        found = [p for p in self.of_type("AWS::Lambda::Function").values()
                 if p["FunctionName"].endswith(f"-{name}")]
        assert len(found) == 1, name
        return found[0]

    def route_tables(self, subnets: list[str]) -> set[str]:
        associations = self.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
        return {a["RouteTableId"] for a in associations if a["SubnetId"] in subnets}


def missing_routes(template: dict[str, Any], network: str, warehouse: str) -> list[str]:
    """What a function (or the warehouse) calls with no route to it, one line each."""
    stack = Stack(template, parameters(network, warehouse))
    endpoints = stack.of_type("AWS::EC2::VPCEndpoint")
    missing = []
    for function in FUNCTIONS.values():
        if not function.in_vpc:
            continue
        config = stack.function_props(function.name)["VpcConfig"]
        assert config["SecurityGroupIds"] == [FUNCTION_SG], function.name
        for call in function.calls_for(warehouse):
            if network == "existing":
                routed = stack.allows("FunctionSecurityGroup", "Egress", 443, "CidrIp", "0.0.0.0/0")
            elif call.service == "s3":
                routed = _gateway(stack, endpoints, config["SubnetIds"]) and \
                    stack.allows("FunctionSecurityGroup", "Egress", 443, "DestinationPrefixListId", PREFIX_LIST)
            else:
                routed = _interface(stack, endpoints, call.service)
            if not routed:
                missing.append(f"{function.name} -> {call.service} ({', '.join(call.operations)})")
        for database in function.databases:
            if database in PORTS:
                port, group = PORTS[database]
                if not (stack.allows("FunctionSecurityGroup", "Egress", port, "DestinationSecurityGroupId",
                                     f"<{group}>")
                        and stack.allows(group, "Ingress", port, "SourceSecurityGroupId", FUNCTION_SG)):
                    missing.append(f"{function.name} -> {database} (port {port})")
    missing += _warehouse_to_s3(stack, endpoints, network, warehouse)
    return missing


def _interface(stack: Stack, endpoints: dict[str, dict[str, Any]], service: str) -> bool:
    for endpoint in endpoints.values():
        if endpoint["ServiceName"] != f"com.amazonaws.{REGION}.{service}" or endpoint["VpcEndpointType"] != "Interface":
            continue
        if str(endpoint.get("PrivateDnsEnabled")).lower() != "true" or not endpoint.get("SubnetIds"):
            continue
        for group in (g.strip("<>") for g in endpoint["SecurityGroupIds"]):
            if stack.allows(group, "Ingress", 443, "SourceSecurityGroupId", FUNCTION_SG) and \
                    stack.allows("FunctionSecurityGroup", "Egress", 443, "DestinationSecurityGroupId", f"<{group}>"):
                return True
    return False


def _gateway(stack: Stack, endpoints: dict[str, dict[str, Any]], subnets: list[str]) -> bool:
    needed = stack.route_tables(subnets)
    return bool(needed) and any(
        e["ServiceName"] == f"com.amazonaws.{REGION}.s3" and e["VpcEndpointType"] == "Gateway"
        and needed <= set(e.get("RouteTableIds", [])) for e in endpoints.values())


def _warehouse_to_s3(stack: Stack, endpoints: dict[str, dict[str, Any]], network: str, warehouse: str) -> list[str]:
    name, subnets_key = (("WarehouseWorkgroup", "SubnetIds") if warehouse == "serverless"
                         else ("WarehouseClusterSubnetGroup", "SubnetIds"))
    warehouse_props = stack.props("WarehouseWorkgroup" if warehouse == "serverless" else "WarehouseCluster")
    problems = []
    if str(warehouse_props.get("EnhancedVpcRouting")).lower() != "true":
        problems.append("the warehouse does not route COPY through the VPC (EnhancedVpcRouting)")
    if not stack.allows("WarehouseSecurityGroup", "Egress", 443, "DestinationPrefixListId", PREFIX_LIST):
        problems.append("warehouse -> s3 (COPY): its security group lets no HTTPS out to S3")
    if network == "created" and not _gateway(stack, endpoints, stack.props(name)[subnets_key]):
        problems.append("warehouse -> s3 (COPY): no gateway endpoint on its subnets' route table")
    return problems


CASES = [(network, warehouse) for network in ("created", "existing") for warehouse in ("serverless", "provisioned")]


@pytest.mark.parametrize(("network", "warehouse"), CASES)
def test_every_call_has_a_route(network: str, warehouse: str) -> None:
    assert missing_routes(resolved_template(), network, warehouse) == []


def test_the_endpoints_are_the_ones_called_and_no_more() -> None:
    """Each interface endpoint costs money: the stack makes exactly those some function in the VPC calls."""
    for warehouse in ("serverless", "provisioned"):
        stack = Stack(resolved_template(), parameters("created", warehouse))
        made = {e["ServiceName"].rsplit(".", 1)[1] for e in stack.of_type("AWS::EC2::VPCEndpoint").values()
                if e["VpcEndpointType"] == "Interface"}
        called = {c.service for f in FUNCTIONS.values() if f.in_vpc for c in f.calls_for(warehouse)} - {"s3"}
        assert made == called, warehouse


@pytest.mark.parametrize("count", [1, 2, 3])
def test_endpoints_span_the_azs_asked_for(count: int) -> None:
    stack = Stack(resolved_template(), {**parameters("created", "serverless"), "EndpointAzCount": str(count)})
    spans = {len(e["SubnetIds"]) for e in stack.of_type("AWS::EC2::VPCEndpoint").values()
             if e["VpcEndpointType"] == "Interface"}
    assert spans == {count}


@pytest.mark.parametrize(("remove", "named"), [
    ("SecretsManagerEndpoint", "ops -> secretsmanager (GetSecretValue)"),
    ("RedshiftServerlessEndpoint", "sync -> redshift-serverless (GetCredentials)"),
    ("S3Endpoint", "sync -> s3 (PutObject, DeleteObject)"),
    ("FunctionsToDatabase", "store -> oltp (port 5432)"),
])
def test_a_missing_route_is_named(remove: str, named: str) -> None:
    """The check can fail: without the resource, the caller and the call are named."""
    template = copy.deepcopy(resolved_template())
    del template["Resources"][remove]
    assert named in missing_routes(template, "created", "serverless")


def test_without_enhanced_routing_or_egress_the_copy_path_is_missing() -> None:
    template = copy.deepcopy(resolved_template())
    template["Resources"]["WarehouseSecurityGroup"]["Properties"]["SecurityGroupEgress"] = [
        {"IpProtocol": "-1", "CidrIp": "127.0.0.1/32", "Description": "none"}]
    assert "warehouse -> s3 (COPY): its security group lets no HTTPS out to S3" in \
        missing_routes(template, "created", "serverless")

"""The AWS target's CloudFormation template, shipped as package data so `txpipe deploy` finds it.

infra/template.yaml is the source, written with CloudFormation's short tags (!Ref, !Sub...);
infra/template.json is the same template resolved (what CloudFormation receives), kept beside it so
that deploying needs no YAML tooling. `python -m infra` writes it again after an edit; a test fails
while the two disagree.

Imports: nothing of the project. Imported by the AWS target (txpipe_cli/aws) and the template tests.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

# What an API Gateway deployment snapshots: a change to any of these must reach a new deployment.
API_DEFINITION_TYPES = frozenset({
    "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Resource", "AWS::ApiGateway::Method", "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator", "AWS::ApiGateway::Authorizer", "AWS::ApiGateway::GatewayResponse"})


def template_body() -> str:
    """The source, as written."""
    return resources.files("infra").joinpath("template.yaml").read_text()


def resolved_template() -> dict[str, Any]:
    """The template as CloudFormation reads it (infra/template.json)."""
    return json.loads(resources.files("infra").joinpath("template.json").read_text())


def resolve(text: str) -> dict[str, Any]:
    """YAML with short tags -> the template as a dict (cfn-lint's loader: a development dependency), each API
    deployment named after the API it snapshots."""
    from cfnlint.decode.cfn_yaml import loads

    return name_api_deployments(json.loads(json.dumps(loads(text))))


def name_api_deployments(template: dict[str, Any]) -> dict[str, Any]:
    """Appends a hash of the API's definition to each AWS::ApiGateway::Deployment's logical id (and every
    reference to it). A deployment is an immutable snapshot of the API, and CloudFormation updates a resource
    only when its own properties change: under a fixed id a changed method would never go live. A new id on
    every change of the API makes CloudFormation create a new deployment, point the stage at it and delete
    the old one (the pattern SAM's AWS::Serverless::Api uses)."""
    resources_ = template["Resources"]
    definition = {name: body for name, body in resources_.items() if body.get("Type") in API_DEFINITION_TYPES}
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:10]
    renames = {name: f"{name}{digest}" for name, body in resources_.items()
               if body.get("Type") == "AWS::ApiGateway::Deployment"}
    if not renames:
        return template
    renamed = _renamed(template, renames)
    renamed["Resources"] = {renames.get(name, name): body for name, body in renamed["Resources"].items()}
    return renamed


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    """The template with references to logical ids renamed: Ref, Fn::GetAtt and DependsOn."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out[key] = renames.get(value, value)
            elif key == "Fn::GetAtt" and isinstance(value, list) and value:
                out[key] = [renames.get(value[0], value[0]), *value[1:]]
            elif key == "DependsOn":
                out[key] = ([renames.get(v, v) for v in value] if isinstance(value, list)
                            else renames.get(value, value))
            else:
                out[key] = _renamed(value, renames)
        return out
    if isinstance(node, list):
        return [_renamed(item, renames) for item in node]
    return node

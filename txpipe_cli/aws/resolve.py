"""A CloudFormation template evaluated offline, under the parameters a deploy would pass: which conditions hold
and what a property resolves to (Ref, Fn::If, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::GetAZs,
Fn::FindInMap). What only exists once deployed (Fn::GetAtt, a resource's Ref) resolves to a placeholder.
A missing parameter takes the template's Default. The cost estimate (pricing.py) reads the template this way.
"""

from __future__ import annotations

import re
from typing import Any

from txpipe_cli.errors import TxpipeError

PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "txpipe",
          "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/txpipe/id"}
NO_VALUE = object()  # AWS::NoValue: the property is left out


class Resolver:
    """The template's Conditions and intrinsic functions, evaluated against the deploy's parameters."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template, self.params = template, dict(parameters)
        for name, spec in template.get("Parameters", {}).items():
            value, kind = parameters.get(name, spec.get("Default")), spec.get("Type", "String")
            if isinstance(value, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
                value = value.split(",")
            self.params[name] = value
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self.truth(self.template.get("Conditions", {})[name])
        return self._conditions[name]

    def truth(self, node: dict[str, Any]) -> bool:
        (fn, args), = node.items()
        if fn == "Condition":
            return self.condition(args)
        if fn == "Fn::Equals":
            return as_text(self.value(args[0])) == as_text(self.value(args[1]))
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn in ("Fn::And", "Fn::Or"):
            return (all if fn == "Fn::And" else any)([self.truth(arg) for arg in args])
        raise TxpipeError(f"cannot evaluate the condition function {fn}", hint=f"teach {__name__} it")

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.value, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not (next(iter(node)) == "Ref" or next(iter(node)).startswith("Fn::")):
            return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}
        (fn, args), = node.items()
        if fn == "Ref":
            return NO_VALUE if args == "AWS::NoValue" else self.params.get(args, PSEUDO.get(args, f"<{args}>"))
        if fn == "Fn::If":
            return self.value(args[1] if self.condition(args[0]) else args[2])
        if fn == "Fn::Sub":
            body, extra = (args, {}) if isinstance(args, str) else (args[0], self.value(args[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: as_text(
                extra[m.group(1)] if m.group(1) in extra else self.value({"Ref": m.group(1)})), body)
        if fn == "Fn::Join":
            return str(args[0]).join(map(as_text, self.value(args[1])))
        if fn == "Fn::Select":
            return self.value(args[1])[int(self.value(args[0]))]
        if fn == "Fn::Split":
            return as_text(self.value(args[1])).split(args[0])
        if fn == "Fn::GetAZs":
            return [f"us-east-1{zone}" for zone in "abcdef"]
        if fn == "Fn::FindInMap":
            first, second, third = (as_text(self.value(arg)) for arg in args)
            return self.template["Mappings"][first][second][third]
        return f"<{fn} {args}>"  # GetAtt, ImportValue...: known once deployed


class Resource:
    """A resource's properties, each resolved when a rule asks for it."""

    def __init__(self, properties: dict[str, Any], resolver: Resolver) -> None:
        self.properties, self.resolver = properties, resolver

    def get(self, key: str, default: Any = None) -> Any:
        return self.resolver.value(self.properties[key]) if key in self.properties else default

    def true(self, key: str) -> bool:
        return as_text(self.get(key, False)) == "true"


def as_text(value: Any) -> str:
    """As CloudFormation compares values: text (a Number parameter's Default may be a JSON number)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return ",".join(map(as_text, value)) if isinstance(value, list) else str(value)

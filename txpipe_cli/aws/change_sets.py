"""What deploy reads of a CloudFormation change set: where the template comes from, each change, and whether
there is anything to change. AwsClient builds them (txpipe_cli/aws/client.py); the planner and the deployer read
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What CloudFormation says when a change set or an update would change nothing.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class Change:
    action: str
    logical_id: str
    resource_type: str
    replacement: str

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "resource": self.logical_id, "type": self.resource_type,
                "replacement": self.replacement}


@dataclass(frozen=True)
class TemplateSource:
    """Where CloudFormation reads a template from: the request itself (TemplateBody) or S3 (TemplateURL)."""

    body: str = ""
    url: str = ""

    @property
    def kind(self) -> str:
        return "TemplateURL" if self.url else "TemplateBody"

    def as_params(self) -> dict[str, str]:
        return {"TemplateURL": self.url} if self.url else {"TemplateBody": self.body}


@dataclass(frozen=True)
class ChangeSet:
    name: str
    ready: bool  # False: nothing to change (CloudFormation refused an empty change set)
    changes: list[Change]
    reason: str = ""


def change_of(raw: dict[str, Any]) -> Change:
    """One entry of DescribeChangeSet's Changes."""
    rc = raw.get("ResourceChange", {})
    return Change(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"),
                  rc.get("Replacement") or "-")

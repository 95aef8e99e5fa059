"""The CloudFormation template (infra/template.yaml) as the template tests read it: its path, and its resources
of one type.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of type `kind` (e.g. AWS::Lambda::Function), by logical name."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}

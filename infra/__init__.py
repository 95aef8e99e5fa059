"""The AWS target's CloudFormation template, shipped as package data so `txpipe deploy` finds it.

infra/template.yaml is the source, written with CloudFormation's short tags (!Ref, !Sub...);
infra/template.json is the same template resolved (what CloudFormation receives), kept beside it so
that deploying needs no YAML tooling. `python -m infra` writes it again after an edit; a test fails
while the two disagree.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def template_body() -> str:
    """The source, as written."""
    return resources.files("infra").joinpath("template.yaml").read_text()


def resolved_template() -> dict[str, Any]:
    """The template as CloudFormation reads it (infra/template.json)."""
    return json.loads(resources.files("infra").joinpath("template.json").read_text())


def resolve(text: str) -> dict[str, Any]:
    """YAML with short tags -> the template as a dict (cfn-lint's loader: a development dependency)."""
    from cfnlint.decode.cfn_yaml import loads

    return loads(text)

"""The AWS target's CloudFormation template, shipped as package data so `txpipe deploy` finds it."""

from __future__ import annotations

from importlib import resources


def template_body() -> str:
    return resources.files("infra").joinpath("template.yaml").read_text()

"""AWS commands say at once what is missing: no region, no credentials (txpipe_cli/aws/client.py, the first
client AwsClient builds; deployer.py, the identity before packaging).

Nothing here reaches AWS: with no region or no credentials AwsClient refuses before any request, and
packaging the Lambda artifact and the template raises if it is ever reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from txpipe_cli.app import app

REGION_HINT = "run: export AWS_DEFAULT_REGION=us-east-1, or set region in your AWS profile"
CREDENTIALS_HINT = "run: aws configure, or aws sso login, or export AWS_PROFILE=<profile>"
MISSING = {
    "region": f"error: no AWS region configured ({REGION_HINT})",
    "credentials": f"error: no AWS credentials configured ({CREDENTIALS_HINT})",
    "both": "error: no AWS region and no AWS credentials configured (run: aws configure (it asks for both), or "
            "export AWS_PROFILE=<a profile with both>)",
}


@pytest.fixture
def packaged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """No AWS configuration at all (no keys, profile, config files or instance metadata), a txpipe home of
    its own, and packaging that fails the command if reached; returns what was packaged."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path / "home"))
    built: list[str] = []

    def never(what: str) -> Any:
        def package(*_: Any) -> Any:
            built.append(what)
            raise AssertionError(f"deploy packaged the {what} before checking region and credentials")

        return package

    monkeypatch.setattr("txpipe_cli.aws.deployer._default_build", never("Lambda artifact"))
    monkeypatch.setattr("txpipe_cli.aws.deployer._default_template", never("template"))
    return built


def configure(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    if missing != "region" and missing != "both":
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    if missing != "credentials" and missing != "both":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def one_line_exit_1(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("missing", list(MISSING))
@pytest.mark.parametrize("plan", [["--plan"], []], ids=["plan", "deploy"])
def test_deploy_says_what_is_missing_before_packaging(packaged: list[str], monkeypatch: pytest.MonkeyPatch,
                                                      missing: str, plan: list[str]) -> None:
    """deploy --target aws (--plan or not) without a region, credentials or both: one line naming what is
    missing and how to set it, exit 1, and neither the Lambda artifact nor the template was built."""
    configure(monkeypatch, missing)
    assert one_line_exit_1("deploy", "--target", "aws", *plan) == MISSING[missing]
    assert packaged == []


@pytest.mark.parametrize("missing", list(MISSING))
def test_status_says_what_is_missing(packaged: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     missing: str) -> None:
    """status --target aws of a recorded deployment, without a region, credentials or both: the same line."""
    configure(monkeypatch, missing)
    home = tmp_path / "home"
    home.mkdir()
    (home / "aws-dev.json").write_text(json.dumps({"stack": "txpipe-dev", "stage": "dev"}))
    assert one_line_exit_1("status", "--target", "aws") == MISSING[missing]


def test_destroy_says_what_is_missing(packaged: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """destroy --target aws without a region: the same line, nothing asked of AWS."""
    configure(monkeypatch, "region")
    assert one_line_exit_1("destroy", "--target", "aws", "--yes") == MISSING["region"]

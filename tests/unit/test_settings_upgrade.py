"""Upgrades never freeze old defaults (txpipe_cli/config.py resolve_settings, `txpipe deploy`): a deploy keeps
what the operator chose and takes the running release's default for the rest; a record an earlier release
wrote (no `chosen` list; tests/fixtures/release-ab5771d) counts that release's defaults as not chosen."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lambdas.core.defaults import MAX_RECEIVE_COUNT
from tests.support.scripted_aws import StackCloud
from txpipe_cli.app import app
from txpipe_cli.aws.client import AwsClient
from txpipe_cli.aws.deployer import Deployer, DeployOptions
from txpipe_cli.aws.package import CompiledTemplate
from txpipe_cli.aws.target import AwsTarget
from txpipe_cli.commands import pipeline
from txpipe_cli.config import PipelineSettings, resolve_settings

runner = CliRunner()
FIXTURES = Path(__file__).parents[1] / "fixtures" / "release-ab5771d"
LOCAL = json.loads((FIXTURES / "local.json").read_text())["settings"]
AWS = json.loads((FIXTURES / "aws-ci.json").read_text())["settings"]


def test_the_fixtures_are_what_the_previous_release_recorded() -> None:
    """Every setting, no list of choices, and that release's defaults for what was not chosen."""
    assert "chosen" not in LOCAL and "chosen" not in AWS
    assert LOCAL["max_receive_count"] == AWS["max_receive_count"] == 5
    assert LOCAL["sync_every_seconds"] == AWS["sync_every_seconds"] == 300.0
    assert set(LOCAL) == set(AWS) == set(PipelineSettings().values())


def test_a_local_deployment_of_the_previous_release_takes_todays_defaults_and_keeps_its_choices() -> None:
    """max_receive_count 5 was that release's default: it moves to today's and says why; refresh_at 03:30 and a
    45 s visibility timeout differ from every release's default, so they were chosen and stay."""
    settings, changes = resolve_settings("local", {}, LOCAL)
    assert settings.max_receive_count == MAX_RECEIVE_COUNT
    assert (settings.refresh_at, settings.visibility_timeout_seconds) == ("03:30", 45.0)
    assert settings.sync_every_seconds == 300.0 and settings.chosen == ["refresh_at", "visibility_timeout_seconds"]
    assert list(changes) == ["max_receive_count"]
    change = changes["max_receive_count"].to_dict()
    assert (change["from"], change["to"], change["default"]) == (5, 1000, True)
    assert change["reason"] == ("the release's default; 5 was an earlier release's default, not recorded as your "
                                "choice: to keep it, deploy --max-receive-count 5")


def test_an_aws_deployment_of_the_previous_release_syncs_as_a_first_aws_deploy_would() -> None:
    """On AWS the 5-minute sync was the default too: it becomes the SLA's (13 min for 900 s); the time zone
    was chosen and stays."""
    settings, changes = resolve_settings("aws", {}, AWS)
    assert (settings.sync_every_seconds, settings.max_receive_count) == (780.0, MAX_RECEIVE_COUNT)
    assert settings.timezone == "America/Chicago" and settings.chosen == ["timezone"]
    assert set(changes) == {"sync_every_seconds", "max_receive_count"}
    assert changes["sync_every_seconds"].line() == (
        "setting sync_every_seconds: 300.0 -> 780.0 (the release's default for a 900 s SLA; 300.0 was an earlier "
        "release's default, not recorded as your choice: to keep it, deploy --sync-every 300s)")
    # The queue's receive count is the template's on AWS: no flag to keep 5 there (deploy refuses it for AWS).
    assert changes["max_receive_count"].line() == (
        "setting max_receive_count: 5 -> 1000 (the release's default; 5 was an earlier release's default, not "
        "recorded as your choice (the local queue's setting: on AWS the template sets the queue))")


def test_a_flag_given_at_the_upgrade_is_a_choice_and_stays() -> None:
    """--max-receive-count 5 at the upgrade keeps 5, now recorded as chosen; a later bare deploy keeps it."""
    settings, changes = resolve_settings("local", {"max_receive_count": 5}, LOCAL)
    assert settings.max_receive_count == 5 and "max_receive_count" in settings.chosen and changes == {}
    again, changes = resolve_settings("local", {}, asdict(settings))
    assert again == settings and changes == {}


def test_what_was_never_chosen_follows_the_release_and_what_was_stays() -> None:
    """A record with its list of choices: an unchosen value that is no longer the default moves ("you never
    chose"); a chosen one stays whatever the defaults are, even one equal to a default."""
    record = {**asdict(PipelineSettings()), "max_receive_count": 7, "visibility_timeout_seconds": 30.0,
              "chosen": ["visibility_timeout_seconds"]}
    settings, changes = resolve_settings("local", {}, record)
    assert settings.max_receive_count == MAX_RECEIVE_COUNT and settings.chosen == ["visibility_timeout_seconds"]
    assert changes["max_receive_count"].reason == ("the release's default; you never chose 7: to keep it, deploy "
                                                   "--max-receive-count 7")
    kept, _ = resolve_settings("local", {}, {**record, "chosen": ["max_receive_count"]})
    assert kept.max_receive_count == 7


@pytest.mark.parametrize(("given", "recorded", "every", "chosen"), [
    ({}, {}, 780.0, []),  # a first AWS deploy: 13 min, the longest whole minutes a 900 s SLA allows
    ({"sla_seconds": 600.0}, {}, 480.0, ["sla_seconds"]),
    ({"sync_every_seconds": 300.0}, {}, 300.0, ["sync_every_seconds"]),
    # The SLA chosen later: an interval nobody chose follows it; a chosen one does not.
    ({"sla_seconds": 600.0}, {**asdict(PipelineSettings(sync_every_seconds=780.0)), "chosen": []}, 480.0,
     ["sla_seconds"]),
    ({}, {**asdict(PipelineSettings(sla_seconds=1200.0, sync_every_seconds=600.0)),
          "chosen": ["sla_seconds", "sync_every_seconds"]}, 600.0, ["sla_seconds", "sync_every_seconds"]),
])
def test_the_aws_sync_default_follows_the_sla(given: dict[str, Any], recorded: dict[str, Any], every: float,
                                              chosen: list[str]) -> None:
    settings, _ = resolve_settings("aws", given, recorded)
    assert (settings.sync_every_seconds, settings.chosen) == (every, chosen)
    settings.validate()


def _aws_target(monkeypatch: pytest.MonkeyPatch, home: Path, cloud: StackCloud) -> None:
    """deploy --target aws builds the real AwsTarget and Deployer, over `cloud` (tests/support/scripted_aws.py)."""
    artifact = home / "txpipe-lambdas-0123456789abcdef.zip"
    artifact.write_bytes(b"zip")
    template = CompiledTemplate(b'{"Resources":{}}', "fedcba9876543210" * 4)

    def get_target(name: str, home_: Path | None = None, stage: str = "dev", *, plan: bool = False,
                   parameters: Mapping[str, str] | None = None, orders_per_month: int = 1_000_000) -> AwsTarget:
        aws = AwsClient(session=cloud.session, sleep=lambda _: None)
        target = AwsTarget(home, stage, aws, options=DeployOptions(plan, dict(parameters or {}), orders_per_month))
        target.deployer = Deployer(aws, home, stage, build=lambda _: {"functions": {"ingest": {"zip": str(artifact)}}},
                                   template=lambda: template)
        return target

    monkeypatch.setattr(pipeline, "get_target", get_target)


def test_an_aws_upgrade_says_what_moved_and_records_the_choices(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The previous release's aws-<stage>.json, deployed over by today's deploy (scripted AWS): the text names
    each setting that moved to today's default and why, the stack gets the 13-minute schedule, and the record
    now lists what was chosen; the next bare deploy changes no setting."""
    home = tmp_path / "home"
    home.mkdir()
    # The record of that release's stage "ci", placed as stage prod's: the scripted account holds txpipe-prod.
    shutil.copy(FIXTURES / "aws-ci.json", home / "aws-prod.json")
    cloud = StackCloud(stack_status="UPDATE_COMPLETE")
    _aws_target(monkeypatch, home, cloud)
    monkeypatch.setenv("TXPIPE_HOME", str(home))
    for name in ("TXPIPE_SYNC_EVERY", "TXPIPE_SLA_SECONDS", "TXPIPE_REFRESH_AT", "TXPIPE_TIMEZONE",
                 "TXPIPE_VISIBILITY_TIMEOUT", "TXPIPE_MAX_RECEIVE_COUNT"):
        monkeypatch.delenv(name, raising=False)

    result = runner.invoke(app, ["deploy", "--target", "aws", "--stage", "prod"])
    assert result.exit_code == 0, result.output
    assert ("setting max_receive_count: 5 -> 1000 (the release's default; 5 was an earlier release's default, not "
            "recorded as your choice (the local queue's setting: on AWS the template sets the queue))") in result.stdout
    assert "setting sync_every_seconds: 300.0 -> 780.0 (the release's default for a 900 s SLA" in result.stdout
    assert "timezone" not in result.stdout
    [params] = cloud.params("CreateChangeSet")
    sent = {p["ParameterKey"]: p["ParameterValue"] for p in params["Parameters"]}
    assert (sent["SyncScheduleMinutes"], sent["RefreshTimezone"]) == ("13", "America/Chicago")
    recorded = json.loads((home / "aws-prod.json").read_text())["settings"]
    assert recorded == {**AWS, "sync_every_seconds": 780.0, "max_receive_count": 1000, "chosen": ["timezone"]}

    again = runner.invoke(app, ["deploy", "--target", "aws", "--stage", "prod", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["settings_changed"] == {}


def test_the_upgrade_in_json_carries_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--json: each setting moved to the default has from, to, default: true and the reason; one given by a
    flag has from and to alone."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURES / "aws-ci.json", home / "aws-prod.json")
    _aws_target(monkeypatch, home, StackCloud(stack_status="UPDATE_COMPLETE"))
    monkeypatch.setenv("TXPIPE_HOME", str(home))
    result = runner.invoke(app, ["deploy", "--target", "aws", "--stage", "prod", "--sla", "600", "--json"])
    assert result.exit_code == 0, result.output
    changed = json.loads(result.stdout)["settings_changed"]
    assert changed["sla_seconds"] == {"from": 900.0, "to": 600.0}
    assert changed["sync_every_seconds"] == {
        "from": 300.0, "to": 480.0, "default": True,
        "reason": "the release's default for a 600 s SLA; 300.0 was an earlier release's default, not recorded as "
                  "your choice: to keep it, deploy --sync-every 300s"}
    assert changed["max_receive_count"]["default"] is True and set(changed) == {
        "sla_seconds", "sync_every_seconds", "max_receive_count"}


def test_status_says_which_settings_were_chosen() -> None:
    """status prints the settings in force, then which were chosen (the rest: the release's defaults)."""
    settings, _ = resolve_settings("local", {}, LOCAL)
    line = pipeline._settings_line(asdict(settings))
    assert "max_receive_count=1000" in line and "chosen=" not in line
    assert line.endswith("(chosen: refresh_at, visibility_timeout_seconds; the rest are the release's defaults)")
    assert pipeline._settings_line(LOCAL).endswith("max_receive_count=5")  # an earlier release's record, as it is


def test_a_setting_line_never_shows_a_bare_none() -> None:
    from txpipe_cli.config import SettingChange

    line = SettingChange("timezone", None, "America/Chicago", given=True).line()
    assert line == "setting timezone: the machine's time zone -> America/Chicago"
    assert SettingChange("sla_seconds", 900.0, 600.0, given=True).line() == "setting sla_seconds: 900.0 -> 600.0"

"""Settings parsing and the schedule-vs-SLA check (txpipe_cli/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdas.core.defaults import SYNC_RUN_SECONDS
from txpipe_cli.config import (
    DEFAULT_SLA_SECONDS,
    PipelineSettings,
    check_schedule,
    default_sync_every,
    parse_clock,
    parse_duration,
)
from txpipe_cli.errors import TxpipeError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("90 seconds", 90.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1.5m", 90.0),
        (" 5M ", 300.0),
        ("rate(5 minutes)", 300.0),
        ("rate(1 minute)", 60.0),
        ("rate(1 hour)", 3600.0),
        ("rate(90 seconds)", 90.0),
    ],
)
def test_parse_duration_reads_seconds(text: str, seconds: float) -> None:
    """Plain seconds, unit suffixes and EventBridge rate() expressions become seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "abc", "5x", "5 fortnights", "-5", "5m30s", "1e3", "m", "rate()", "rate(5 minutes", "rate(five minutes)",
     "cron(0 * * * ? *)", "5 minutes ago"],
)
def test_parse_duration_refuses_unreadable_text(text: str) -> None:
    """Text that is not a duration raises TxpipeError naming the input and suggesting a format."""
    with pytest.raises(TxpipeError) as info:
        parse_duration(text)
    assert repr(text) in info.value.reason
    assert info.value.hint and "5m" in info.value.hint


@pytest.mark.parametrize("text", ["0", "0s", "0.0m", "rate(0 minutes)"])
def test_parse_duration_refuses_zero(text: str) -> None:
    """A zero duration is refused as not positive."""
    with pytest.raises(TxpipeError, match="positive"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "clock"),
    [("02:00", (2, 0)), ("2:00", (2, 0)), ("00:00", (0, 0)), ("23:59", (23, 59)), (" 07:30 ", (7, 30)),
     ("19:05", (19, 5))],
)
def test_parse_clock_reads_hours_and_minutes(text: str, clock: tuple[int, int]) -> None:
    """HH:MM (hour may be one digit) becomes (hour, minute)."""
    assert parse_clock(text) == clock


@pytest.mark.parametrize("text", ["24:00", "12:60", "2:5", "0200", "2", "ab:cd", "", "-1:00", "02:00:00",
                                  "2pm"])
def test_parse_clock_refuses_bad_times(text: str) -> None:
    """Anything but a valid 24-hour HH:MM raises TxpipeError with a hint."""
    with pytest.raises(TxpipeError) as info:
        parse_clock(text)
    assert repr(text) in info.value.reason
    assert info.value.hint and "HH:MM" in info.value.hint


def test_five_minute_sync_meets_900s_sla() -> None:
    """A sync every 5 minutes (300 s + 120 s run) fits the default 900 s SLA."""
    check_schedule(parse_duration("rate(5 minutes)"), 900.0)


def test_fifteen_minute_sync_misses_900s_sla() -> None:
    """A sync every 15 minutes cannot meet a 900 s SLA; the reason names the SLA and a usable interval."""
    with pytest.raises(TxpipeError) as info:
        check_schedule(parse_duration("15m"), 900.0)
    assert "900 s SLA" in info.value.reason
    assert "1020" in info.value.reason  # the worst case: 900 s interval + 120 s run
    assert info.value.hint == "use --sync-every 780s or less"


def test_schedule_exactly_at_sla_passes() -> None:
    """Boundary: interval + 120 s timeout == SLA is allowed."""
    assert SYNC_RUN_SECONDS == 120.0
    check_schedule(900.0 - SYNC_RUN_SECONDS, 900.0)


def test_schedule_just_over_sla_fails() -> None:
    """Boundary: one second over the SLA is refused."""
    with pytest.raises(TxpipeError, match="SLA"):
        check_schedule(900.0 - SYNC_RUN_SECONDS + 1, 900.0)


def test_schedule_uses_given_timeout() -> None:
    """The run timeout is part of the worst case: a longer timeout can break an otherwise fine schedule."""
    check_schedule(300.0, 900.0, sync_timeout_seconds=600.0)
    with pytest.raises(TxpipeError):
        check_schedule(300.0, 900.0, sync_timeout_seconds=601.0)


@pytest.mark.parametrize(("sla", "minutes"), [(900.0, 13), (600.0, 8), (959.0, 13), (960.0, 14), (180.0, 1)])
def test_aws_syncs_as_seldom_as_the_sla_allows(sla: float, minutes: int) -> None:
    """AWS's first schedule: the longest whole-minute interval whose worst case (plus a run) meets the SLA."""
    chosen = default_sync_every("aws", sla)
    assert chosen == minutes * 60
    check_schedule(chosen, sla)
    with pytest.raises(TxpipeError, match="SLA"):
        check_schedule(chosen + 60, sla)


def test_the_local_target_keeps_five_minutes_and_a_hopeless_sla_is_refused_later() -> None:
    """Locally a run costs nothing: 5 minutes whatever the SLA. An SLA no minute meets gets a minute, which
    the schedule check refuses with its reason."""
    assert default_sync_every("local", 900.0) == default_sync_every("local", 3600.0) == 300.0
    assert default_sync_every("aws", 150.0) == 60.0
    with pytest.raises(TxpipeError, match="150 s SLA"):
        PipelineSettings(sla_seconds=150.0, sync_every_seconds=default_sync_every("aws", 150.0)).validate()


def test_default_settings_validate() -> None:
    """The default settings are valid and validate() returns the settings themselves."""
    settings = PipelineSettings()
    assert settings.sla_seconds == DEFAULT_SLA_SECONDS
    assert settings.validate() is settings


@pytest.mark.parametrize("zone", ["America/Chicago", "UTC", "Europe/Berlin"])
def test_known_timezone_is_accepted(zone: str) -> None:
    """An IANA time zone name passes validation."""
    assert PipelineSettings(timezone=zone).validate().timezone == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "America/Chicag", "America", "../etc/passwd",
                                  "/etc/localtime", "Not A Zone"])
def test_unknown_timezone_is_refused(zone: str) -> None:
    """An unknown or path-like time zone raises TxpipeError (not ZoneInfo's own errors), naming it."""
    with pytest.raises(TxpipeError) as info:
        PipelineSettings(timezone=zone).validate()
    assert repr(zone) in info.value.reason
    assert info.value.hint and "IANA" in info.value.hint


def test_settings_refuse_a_schedule_missing_the_sla() -> None:
    """validate() applies the schedule check."""
    with pytest.raises(TxpipeError, match="SLA"):
        PipelineSettings(sla_seconds=600.0, sync_every_seconds=600.0).validate()


def test_settings_refuse_a_bad_refresh_time() -> None:
    """validate() applies the clock check to refresh_at."""
    with pytest.raises(TxpipeError, match="25:00"):
        PipelineSettings(refresh_at="25:00").validate()


def test_a_non_positive_sla_is_refused_before_any_schedule_talk() -> None:
    from txpipe_cli.config import PipelineSettings

    for sla in (0.0, -5.0):
        with pytest.raises(TxpipeError, match="must be a positive number of seconds"):
            PipelineSettings(sla_seconds=sla).validate()


def test_an_sla_no_schedule_can_meet_gets_a_hint_that_can_be_followed() -> None:
    from txpipe_cli.config import check_schedule

    with pytest.raises(TxpipeError) as info:
        check_schedule(60, 120)
    assert info.value.hint == "no schedule can: a sync run may take 120 s; use --sla 121 or more"
    check_schedule(1, 121)  # the hint's own figure is accepted


def test_state_lives_per_user_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from txpipe_cli import config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TXPIPE_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert config.home() == tmp_path / "state" / "txpipe"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert config.home() == tmp_path / "user" / ".local" / "state" / "txpipe"
    (tmp_path / ".txpipe").mkdir()
    (tmp_path / ".txpipe" / "local.json").write_text("{}")  # an earlier release's deployment, found where it is
    assert config.home() == tmp_path / ".txpipe"
    monkeypatch.setenv("TXPIPE_HOME", str(tmp_path / "elsewhere"))
    assert config.home() == tmp_path / "elsewhere"


def test_home_and_version_on_the_root_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from txpipe_cli.app import app

    monkeypatch.delenv("TXPIPE_HOME", raising=False)
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("txpipe ")
    status = runner.invoke(app, ["--home", str(tmp_path / "h"), "status"])
    assert status.exit_code == 1 and f"nothing is deployed under {tmp_path / 'h'}" in status.output
    assert "--home" in runner.invoke(app, ["--help"]).output and "<bool>" not in runner.invoke(app, ["--help"]).output

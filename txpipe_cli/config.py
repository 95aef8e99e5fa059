"""Settings resolved once, with one precedence: flag > environment (TXPIPE_...) > what an earlier deploy
was given > the release's default.

The deployed settings (schedule, SLA) are recorded in the target's state under $TXPIPE_HOME, so later
commands (status, sla-report) use what was deployed, together with the names the operator chose
(`PipelineSettings.chosen`). Only those stay from deploy to deploy: every other setting takes the
running release's default at each deploy (`resolve_settings`), so an upgrade never freezes an old one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lambdas.core import defaults
from txpipe_cli.errors import OptionError

# The release's defaults live in lambdas/core/defaults.py; these names are what the deployer, the pricing and
# the commands import.
DEFAULT_SLA_SECONDS = defaults.SLA_SECONDS
DEFAULT_ORDERS_PER_MONTH = defaults.ORDERS_PER_MONTH
MIN_SYNC_EVERY_SECONDS = 1.0  # the shortest schedule the local target runs (AWS: a minute, EventBridge's floor)

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}


# Where an earlier release's default differs from this one's (git log -p -- txpipe_cli/config.py
# lambdas/core/failures.py): up to ab5771d a message went to the dead-letter queue after 5 receives; up to
# 798805c a first AWS deploy synced every 5 minutes. A deployment recorded by a release that kept no list of
# choices (no `chosen`) is read with these: a value equal to one of them, or to this release's default, was
# a default then, not a choice.
EARLIER_DEFAULTS: dict[str, tuple[Any, ...]] = {"max_receive_count": (5,), "sync_every_seconds": (300.0,)}
# The deploy flag that sets each setting (each also read from its TXPIPE_ environment variable).
SETTING_FLAGS = {"sla_seconds": "--sla", "sync_every_seconds": "--sync-every", "refresh_at": "--refresh-at",
                 "timezone": "--timezone", "visibility_timeout_seconds": "--visibility-timeout",
                 "max_receive_count": "--max-receive-count"}
# The local queue's knobs. On AWS the template sets them (the queue's visibility timeout from the store function's
# timeout, as AWS advises for an event source mapping; its redrive policy's maxReceiveCount): deploy refuses them
# there, and a change of them is said without a flag to keep it.
LOCAL_ONLY_SETTINGS = ("visibility_timeout_seconds", "max_receive_count")
LOCAL_ONLY_VARIABLES = {"visibility_timeout_seconds": "TXPIPE_VISIBILITY_TIMEOUT",
                        "max_receive_count": "TXPIPE_MAX_RECEIVE_COUNT"}

LEGACY_HOME = Path(".txpipe")  # the default of earlier releases: relative to the working directory


def default_home() -> Path:
    """Per user, wherever the command runs: $XDG_STATE_HOME/txpipe, else ~/.local/state/txpipe."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "txpipe"


def home() -> Path:
    """The state directory: --home or TXPIPE_HOME (the root command sets the latter from the former), else the
    per-user default; a deployment an earlier release left in ./.txpipe is still found there."""
    if os.environ.get("TXPIPE_HOME"):
        return Path(os.environ["TXPIPE_HOME"]).absolute()
    default = default_home()
    legacy = LEGACY_HOME.absolute()
    if not default.exists() and any((legacy / name).exists() for name in ("local.json", "secrets")):
        return legacy
    return default


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h', '2d' or an EventBridge 'rate(5 minutes)' -> seconds."""
    value = text.strip()
    rate = re.fullmatch(r"rate\((.+)\)", value)
    if rate:
        value = rate.group(1)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.lower())
    if not match or (match.group(2) and match.group(2) not in _UNITS):
        raise OptionError(f"cannot read duration {text!r}", hint="use e.g. 90s, 5m, 1h or rate(5 minutes)")
    seconds = float(match.group(1)) * _UNITS.get(match.group(2) or "s", 1)
    if seconds <= 0:
        raise OptionError(f"duration {text!r} must be positive")
    return seconds


def parse_clock(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise OptionError(f"cannot read time of day {text!r}", hint="use HH:MM, e.g. 02:00")
    return int(match.group(1)), int(match.group(2))


def check_schedule(sync_every_seconds: float, sla_seconds: float,
                   sync_timeout_seconds: float = defaults.SYNC_RUN_SECONDS) -> None:
    """Refuses a sync schedule that cannot meet the SLA even when every run succeeds."""
    worst = sync_every_seconds + sync_timeout_seconds
    if worst > sla_seconds:
        room = sla_seconds - sync_timeout_seconds
        hint = (f"use --sync-every {int(room)}s or less" if room >= MIN_SYNC_EVERY_SECONDS else
                f"no schedule can: a sync run may take {sync_timeout_seconds:g} s; use --sla "
                f"{int(sync_timeout_seconds + MIN_SYNC_EVERY_SECONDS)} or more")
        raise OptionError(
            f"a sync every {sync_every_seconds:g} s cannot meet the {sla_seconds:g} s SLA: an order accepted just "
            f"after a run waits {sync_every_seconds:g} s plus up to {sync_timeout_seconds:g} s for the next run "
            f"({worst:g} s)", hint=hint)


def default_sync_every(target: str, sla_seconds: float,
                       sync_timeout_seconds: float = defaults.SYNC_RUN_SECONDS) -> float:
    """A first deploy's sync interval when --sync-every is not given. AWS: the longest whole-minute interval
    (EventBridge's unit) that still meets the SLA with a run's budget, 13 minutes for 900 s: each run that
    finds orders wakes the warehouse, billed at least 60 s (txpipe_cli/aws/pricing.py), so the fewer the
    cheaper. An SLA too short for any gets a minute, which `check_schedule` then refuses with the reason.
    Local: defaults.LOCAL_SYNC_EVERY_SECONDS (a run costs nothing there)."""
    if target != "aws":
        return defaults.LOCAL_SYNC_EVERY_SECONDS
    return max(1, int((sla_seconds - sync_timeout_seconds) // 60)) * 60.0


@dataclass(frozen=True)
class PipelineSettings:
    """What `deploy` sets up; recorded in the target's state."""

    sla_seconds: float = defaults.SLA_SECONDS
    sync_every_seconds: float = defaults.LOCAL_SYNC_EVERY_SECONDS  # AWS: release_defaults derives it from the SLA
    refresh_at: str = defaults.REFRESH_AT
    timezone: str | None = None  # None: the machine's local time zone
    visibility_timeout_seconds: float = defaults.VISIBILITY_TIMEOUT_SECONDS  # how long a received order stays hidden
    # Receives before a message goes to the dead-letter queue: a backstop for deliveries that crash,
    # set so that an outage never reaches it (lambdas/core/failures.py).
    max_receive_count: int = defaults.MAX_RECEIVE_COUNT
    # The settings the operator gave (a flag or TXPIPE_ variable, at this deploy or an earlier one), sorted;
    # every other one is the release's default. A list, not a tuple: it is recorded as JSON and compared with
    # what was read back.
    chosen: list[str] = field(default_factory=list, hash=False)

    def values(self) -> dict[str, Any]:
        """The settings by name, without `chosen`."""
        return {name: getattr(self, name) for name in setting_names()}

    def validate(self) -> PipelineSettings:
        if not self.sla_seconds > 0:
            raise OptionError(f"--sla {self.sla_seconds:g} must be a positive number of seconds")
        check_schedule(self.sync_every_seconds, self.sla_seconds)
        parse_clock(self.refresh_at)
        if self.visibility_timeout_seconds <= 0 or not 1 <= self.max_receive_count <= defaults.SQS_MAX_RECEIVE_COUNT:
            raise OptionError("the visibility timeout must be positive and max receive count 1 to "
                              f"{defaults.SQS_MAX_RECEIVE_COUNT} (as SQS allows)")
        if self.timezone:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory, not a zone
                raise OptionError(f"unknown time zone {self.timezone!r}",
                                  hint="use an IANA name like America/Chicago") from None
        return self


def setting_names() -> list[str]:
    return [f.name for f in fields(PipelineSettings) if f.name != "chosen"]


def release_defaults(target: str, sla_seconds: float) -> dict[str, Any]:
    """This release's default for each setting; on AWS the sync interval follows the SLA (default_sync_every)."""
    defaults = {f.name: f.default for f in fields(PipelineSettings) if f.name != "chosen"}
    defaults["sync_every_seconds"] = default_sync_every(target, sla_seconds)
    return defaults


def recorded_choices(target: str, recorded: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """What an earlier deploy recorded that the operator chose, by name, and whether the record said so
    itself. A record with no `chosen` list (an earlier release's) is read with the defaults of the releases
    that may have written it: a value equal to one of them was not chosen (EARLIER_DEFAULTS)."""
    names = setting_names()
    if "chosen" in recorded:
        return {name: recorded[name] for name in recorded["chosen"] if name in names and name in recorded}, True
    then = release_defaults(target, float(recorded.get("sla_seconds", DEFAULT_SLA_SECONDS)))
    return {name: recorded[name] for name in names if name in recorded
            and recorded[name] != then[name] and recorded[name] not in EARLIER_DEFAULTS.get(name, ())}, False


def flag_text(name: str, value: Any) -> str:
    """The deploy option that sets `name` to `value`, as an operator types it."""
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{SETTING_FLAGS[name]} {shown}s" if name == "sync_every_seconds" else f"{SETTING_FLAGS[name]} {shown}"


@dataclass(frozen=True)
class SettingChange:
    """A setting a deploy changes: given now (a flag or the environment), or moved to the release's default
    because nobody chose the value it had."""

    name: str
    before: Any
    after: Any
    given: bool
    recorded_choices: bool = True  # the record said what was chosen (False: an earlier release's record)
    sla_seconds: float | None = None  # the SLA an AWS sync default follows
    template_sets: bool = False  # a local-only setting on AWS: no flag keeps it there (LOCAL_ONLY_SETTINGS)

    @property
    def reason(self) -> str:
        if self.given:
            return ""
        default = "the release's default" + (f" for a {self.sla_seconds:g} s SLA" if self.sla_seconds else "")
        never = (f"you never chose {self.before}" if self.recorded_choices else
                 f"{self.before} was an earlier release's default, not recorded as your choice")
        keep = f": to keep it, deploy {flag_text(self.name, self.before)}" if self.before is not None else ""
        if self.template_sets:
            keep = " (the local queue's setting: on AWS the template sets the queue)"
        return f"{default}; {never}{keep}"

    def to_dict(self) -> dict[str, Any]:
        if self.given:
            return {"from": self.before, "to": self.after}
        return {"from": self.before, "to": self.after, "default": True, "reason": self.reason}

    def line(self) -> str:
        return (f"setting {self.name}: {shown_setting(self.name, self.before)} -> "
                f"{shown_setting(self.name, self.after)}" + (f" ({self.reason})" if self.reason else ""))


def shown_setting(name: str, value: Any) -> str:
    """A setting's value for people: no bare None (a time zone not set is the machine's)."""
    if value is None:
        return "the machine's time zone" if name == "timezone" else "not set"
    return str(value)


def resolve_settings(target: str, given: dict[str, Any],
                     recorded: dict[str, Any]) -> tuple[PipelineSettings, dict[str, SettingChange]]:
    """A deploy's settings: what is `given` now (None: not given), else what the operator chose before
    (`recorded`, the target's record of the last deploy: {} before a first one), else this release's
    default; and what that changes from the record. Not validated."""
    names = setting_names()
    now = {name: value for name, value in given.items() if value is not None and name in names}
    kept, said = recorded_choices(target, recorded)
    values = {**kept, **now}
    sla = float(values.get("sla_seconds", DEFAULT_SLA_SECONDS))
    settings = PipelineSettings(**{**release_defaults(target, sla), **values}, chosen=sorted(values))
    changes: dict[str, SettingChange] = {}
    for name, value in settings.values().items():
        if recorded and recorded.get(name) != value:
            follows = sla if name == "sync_every_seconds" and target == "aws" else None
            changes[name] = SettingChange(name, recorded.get(name), value, name in now, said, follows,
                                          template_sets=target != "local" and name in LOCAL_ONLY_SETTINGS)
    return settings, changes

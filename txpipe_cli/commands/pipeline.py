"""deploy, status, destroy: the pipeline's lifecycle on a target."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column

from lambdas.core import defaults
from lambdas.core.contract import OltpStatus, Status
from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.commands.warehouse import last_sync_label
from txpipe_cli.errors import OptionError, TxpipeError
from txpipe_cli.health import human_size, next_step, problems
from txpipe_cli.humanize import duration, moment, plural
from txpipe_cli.output import console, err_console, fail, folding_table, handle_errors, print_json
from txpipe_cli.targets import Target, get_target


@handle_errors
def deploy(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    plan: Annotated[bool, typer.Option("--plan", help="Apply nothing; print the monthly cost estimate (AWS: and "
                                                       "the change set; creates no bucket, object or stack).")] = False,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="AWS: template parameter KEY=VALUE (repeatable), e.g. WarehouseMode=provisioned.")] = None,
    sync_every: Annotated[str | None, typer.Option(
        envvar="TXPIPE_SYNC_EVERY", show_default=False,
        help="Warehouse sync schedule: 5m, 90s, rate(5 minutes)... [until given: local "
             f"{defaults.LOCAL_SYNC_EVERY_SECONDS / 60:g}m; aws the longest whole minutes the SLA allows with a "
             f"run's time, {config.default_sync_every('aws', defaults.SLA_SECONDS) / 60:g}m for "
             f"{defaults.SLA_SECONDS:g} s]")] = None,
    sla: Annotated[float | None, typer.Option(
        "--sla", envvar="TXPIPE_SLA_SECONDS", show_default=False,
        help=f"Freshness SLA in seconds (OLTP accept -> warehouse load). [until given: {defaults.SLA_SECONDS:g}]")
    ] = None,
    refresh_at: Annotated[str | None, typer.Option(
        envvar="TXPIPE_REFRESH_AT", show_default=False,
        help=f"Daily view refresh time, HH:MM. [until given: {defaults.REFRESH_AT}]")] = None,
    timezone: Annotated[str | None, typer.Option(
        envvar="TXPIPE_TIMEZONE", show_default=False,
        help="IANA time zone for the refresh. [until given: the machine's]")] = None,
    visibility_timeout: Annotated[float | None, typer.Option(
        min=1, envvar=config.LOCAL_ONLY_VARIABLES["visibility_timeout_seconds"], show_default=False,
        help="Local target only: seconds a received order stays hidden. "
             f"[until given: {defaults.VISIBILITY_TIMEOUT_SECONDS:g}]")
    ] = None,
    max_receive_count: Annotated[int | None, typer.Option(
        min=1, max=defaults.SQS_MAX_RECEIVE_COUNT, envvar=config.LOCAL_ONLY_VARIABLES["max_receive_count"],
        show_default=False,
        help="Local target only: deliveries that crash before an order goes to the DLQ (a backstop: a failure the "
             "store reports is retried with backoff or dead-lettered at once). "
             f"[until given: {defaults.MAX_RECEIVE_COUNT}]")
    ] = None,
    orders_per_month: Annotated[int, typer.Option(
        min=0, help="Orders a month the cost estimate is for (--plan; AWS: also printed before deploying).")
    ] = config.DEFAULT_ORDERS_PER_MONTH,
    as_json: JsonOpt = False,
) -> None:
    """Provision or update everything the pipeline needs, idempotently.

    Local (the default): a PostgreSQL server (OLTP, warehouse and queue databases)
    and a background runtime serving the HTTP API, the queue pollers and the
    schedules. AWS: one CloudFormation stack through a change set, the Lambda
    artifact in an artifacts bucket, then the schema migrations. Running it again
    changes nothing and says so. Refuses a sync schedule that cannot meet the SLA.

    Settings you give stay: a deploy keeps every setting a flag or its TXPIPE_ variable gave this one or an
    earlier deploy of this target and stage, and a flag changes only its own setting. Every setting nobody
    gave follows the running release's default, so an upgrade moves it when the default moved; the output
    says what changed and why, and `txpipe status` shows the settings and which were chosen. A deployment
    recorded by an earlier release, which kept no list of choices, counts a value that was a release's
    default as not chosen.

    Cost: --plan prints the monthly estimate line by line for the settings, --param and --orders-per-month
    given (the local target costs nothing); a deploy to AWS prints it before creating anything.
    """
    given = {"sla_seconds": sla, "sync_every_seconds": config.parse_duration(sync_every) if sync_every else None,
             "refresh_at": refresh_at, "timezone": timezone, "visibility_timeout_seconds": visibility_timeout,
             "max_receive_count": max_receive_count}
    _refuse_local_only(target, given)
    chosen = get_target(target, stage=stage, plan=plan, parameters=_parameters(param or []),
                        orders_per_month=orders_per_month)
    settings, changes = config.resolve_settings(target, given, _deployed_settings(chosen))
    settings.validate()
    with err_console.status("deploying...") as spinner:
        result = chosen.deploy(settings, step=lambda name: spinner.update(f"deploying: {name}..."),
                               on_event=_print_event)
    result["settings_changed"] = {name: change.to_dict() for name, change in changes.items()}
    if as_json:
        print_json(result)
    else:
        if "changes" in result:  # planned through a change set
            _render_change_set(result)
        elif result.get("action") == "planned":
            console.print("Plan only: nothing was started or changed. The local target runs on this machine: "
                          "it costs nothing ($0.00 a month).", highlight=False)
        else:  # converged part by part
            _render_actions(result)
        if result.get("estimate_error"):
            err_console.print(f"no cost estimate: {result['estimate_error']}", highlight=False, soft_wrap=True)
        if plan and result.get("estimate"):
            render_estimate(result["estimate"], console)
        elif result.get("estimate") and result.get("changed"):
            estimate = result["estimate"]
            console.print(f"Estimated cost: ${estimate['total_usd']:,.2f} a month at {estimate['orders_per_month']:,} "
                          f"orders (the lines: txpipe deploy --target {target} --plan)", highlight=False)
        for change in changes.values():
            console.print(change.line(), highlight=False, soft_wrap=True)


def _refuse_local_only(target: str, given: dict[str, Any]) -> None:
    """A local-only setting given (by its flag or its variable) for another target: one usage line, nothing done
    (it would be recorded and never reach the queue)."""
    if target == "local":
        return
    for name in config.LOCAL_ONLY_SETTINGS:
        if given.get(name) is not None:
            flag, variable = config.SETTING_FLAGS[name], config.LOCAL_ONLY_VARIABLES[name]
            raise OptionError(f"{flag} (or {variable}) sets the local queue only; on {target} the template sets it "
                              f"(the queue's visibility timeout: {defaults.SQS_VISIBILITY_TIMEOUTS_PER_STORE_TIMEOUT} "
                              f"x the store function's timeout; its max receive count: {defaults.MAX_RECEIVE_COUNT})",
                              hint=f"deploy --target {target} without {flag}, and unset {variable}")


def _deployed_settings(target: Target) -> dict[str, Any]:
    """What the last deploy of this target and stage was given; nothing before a first deploy."""
    try:
        return target.deployed_settings()
    except TxpipeError:
        return {}


def _parameters(pairs: list[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"--param {pair!r} is not KEY=VALUE")
        parsed[key] = value
    return parsed


def _print_event(event: dict[str, Any]) -> None:
    if "estimate" in event:  # sent once, before a deploy creates or changes anything
        render_estimate(event["estimate"], err_console, assumptions=False)
        return
    status = event.get("ResourceStatus", "")
    colour = "red" if "FAILED" in status else "green" if status.endswith("COMPLETE") else "yellow"
    reason = event.get("ResourceStatusReason") or ""
    err_console.print(f"  [{colour}]{status:<20}[/] {event.get('LogicalResourceId', '')} "
                      f"({event.get('ResourceType', '')}) {reason}", highlight=False)


def render_estimate(estimate: dict[str, Any], out: Console, assumptions: bool = True) -> None:
    """The monthly cost, line by line (pricing.Estimate.to_dict), then the total and the cost per million orders."""
    title = f"monthly cost at {estimate['orders_per_month']:,} orders (list prices of {estimate['prices_date']})"
    table = folding_table("part", "detail", Column("$/month", justify="right"), title=title)
    for line in estimate["lines"]:
        table.add_row(line["part"], line["detail"], f"{line['monthly_usd']:,.2f}")
    out.print(table)
    out.print(f"total: ${estimate['total_usd']:,.2f} a month; each further million orders adds "
              f"${estimate['per_million_orders_usd']:,.2f}", highlight=False)
    for assumption in estimate["assumptions"] if assumptions else ():
        out.print(f"  assumes: {assumption}", highlight=False, style="dim")


def _render_actions(result: dict[str, Any]) -> None:
    table = folding_table("part", "state", title=f"txpipe deploy --target {result['target']}")
    for part, action in result["actions"].items():
        table.add_row(part, action)
    console.print(table)
    console.print("Nothing to change: every part is running and up to date." if not result["changed"]
                  else f"Deployed. Orders API: {result['api_url']}/orders")


def _render_change_set(result: dict[str, Any]) -> None:
    table = folding_table("action", "resource", "type", "replacement", title=f"change set for stack {result['stack']}")
    for change in result["changes"]:
        table.add_row(change["action"], change["resource"], change["type"], change["replacement"])
    if result["changes"]:
        console.print(table)
    if result["action"] == "planned":
        if result.get("uploads"):
            console.print(f"A deploy would upload: {', '.join(result['uploads'])}.", highlight=False)
        console.print(f"Plan only: {plural(len(result['changes']), 'change')}; nothing was created or changed.")
    elif result["action"] == "unchanged":
        console.print(f"Nothing to change: stack {result['stack']} is up to date.")
    else:
        api = result["record"].get("api_url")
        console.print(f"Stack {result['stack']} {result['action']}. Orders API: {api}/orders")


@handle_errors
def status(target: TargetOpt = "local", stage: StageOpt = "dev", as_json: JsonOpt = False) -> None:
    """Show each part alive or dead, the queue, dead letters, outbox backlog, last sync and schedules.

    Exits 1, naming every problem in one line, when a part is dead or hung, a database cannot be
    reached, the last scheduled sync failed, an alarm fires, dead letters wait, or the disk PostgreSQL
    writes to is full or low (local: the free space of its data directory's filesystem and of
    $TXPIPE_HOME's is shown).
    """
    result = get_target(target, stage=stage).status()
    found = problems(result)
    if as_json:
        print_json({**result, "problems": found})
    else:
        _render_status(target, result)
    if found:
        fail(f"{'; '.join(found)} (run: {next_step(result, found)})")


def _render_status(target: str, result: dict[str, Any]) -> None:
    table = folding_table("part", "state", "detail", title=f"txpipe status --target {target}")
    for name, part in result["parts"].items():
        state = part.get("state", "alive" if part["alive"] else "dead")
        detail = ", ".join(f"{k}={v}" for k, v in part.items()
                           if k not in ("alive", "state", "pollers") and v is not None)
        table.add_row(name, f"[green]{state}[/]" if part["alive"] else f"[red]{state}[/]", detail)
    console.print(table)
    for name, fs in ((result.get("disk") or {}).get("filesystems") or {}).items():
        colour = {"ok": "green", "low": "yellow"}.get(fs["state"], "red")
        console.print(f"disk, {name}: {human_size(fs['free_bytes'])} free of {human_size(fs['size_bytes'])} "
                      f"({fs['free_percent']:g}%) on {fs['path']} [{colour}]{fs['state']}[/]", highlight=False)
    # The ops function's status, as the target read it (a store it could not read: its figures shown as ?).
    pipeline = Status.from_dict(result.get("pipeline") or {})
    queue, oltp = pipeline.queue, pipeline.oltp or OltpStatus()
    facts = folding_table("measure", "value", title="pipeline")
    for label, value in [
        ("queue: waiting", queue and queue.visible), ("queue: in flight", queue and queue.in_flight),
        ("dead letters", queue and queue.dead_letters), ("outbox backlog", oltp.outbox_backlog),
        ("oldest pending since", moment(oltp.oldest_pending_at) if oltp.oldest_pending_at else "none pending"),
        ("rejected orders pending", oltp.rejected_orders), ("orders (OLTP)", oltp.about("orders")),
        ("customers", oltp.about("customers")),
        (last_sync_label(target), moment(pipeline.last_sync.finished_at) if pipeline.last_sync else "never"),
    ]:
        facts.add_row(label, "?" if value is None else str(value))
    if result.get("pipeline"):
        console.print(facts)
    schedules = result.get("schedules") or {}
    if result.get("settings"):
        # No time zone set: the local runtime follows the machine's (its refresh schedule says which); EventBridge, UTC.
        zone = (schedules.get("refresh") or {}).get("timezone")
        unset = "UTC" if target == "aws" else f"the machine's time zone ({zone})" if zone else "the machine's time zone"
        console.print(_settings_line(result["settings"], unset), highlight=False)
    for name, schedule in schedules.items():
        console.print(f"schedule [bold]{name}[/]: {_last_run(schedule.get('last_run'))}, "
                      f"next {moment(schedule['next_run_at'])}", highlight=False)


def _last_run(last: dict[str, Any] | None) -> str:
    if not last:
        return "no run yet"
    outcome = "failed" if last.get("error") else "ok"
    at = last.get("finished_at") or last.get("started_at")
    return f"last run {outcome}" + (f" {moment(at)}" if at else "")


def _setting(name: str, value: Any, unset_zone: str) -> str:
    """A setting's value as the operator reads it: a duration also in minutes or hours, and for no time zone
    the one the refresh follows (`unset_zone`)."""
    if name == "timezone" and value is None:
        return unset_zone
    if name.endswith("_seconds") and isinstance(value, int | float):
        return f"{value:g}" + (f" ({duration(value)})" if value >= 60 else "")
    return str(value)


def _settings_line(settings: dict[str, Any], unset_zone: str = "the machine's time zone") -> str:
    """The settings in force and which of them the operator chose (the rest follow the release's defaults);
    `unset_zone`: what the refresh follows when no time zone is set."""
    values = ", ".join(f"{k}={_setting(k, v, unset_zone)}" for k, v in settings.items() if k != "chosen")
    if "chosen" not in settings:  # recorded by an earlier release: the next deploy sorts them out
        return f"settings: {values}"
    chosen = ", ".join(settings["chosen"]) or "none"
    return f"settings: {values} (chosen: {chosen}; the rest are the release's defaults)"


@handle_errors
def destroy(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove the deployment: locally every process and file txpipe made; on AWS the stack and the
    artifacts bucket (databases leave a final snapshot, by their deletion policy)."""
    chosen = get_target(target, stage=stage)
    if not yes:
        typer.confirm(f"Destroy the {target} deployment and delete all its data?", abort=True)
    result = chosen.destroy(on_event=_print_event)
    if as_json:
        print_json(result)
    elif result["destroyed"]:
        console.print(f"Destroyed the {target} deployment.")
    else:
        console.print(f"Nothing to destroy: {result['reason']}.")


@handle_errors
def endpoint(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    show_key: Annotated[bool, typer.Option("--show-key", help="Also print the API key (a secret).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the URL point-of-sale clients POST orders to: exactly what `txpipe send --url` and curl take
    (`curl -H "x-api-key: $KEY" --data @orders.json URL`)."""
    chosen = get_target(target, stage=stage)
    url = f"{chosen.api_url}/orders"
    headers = chosen.api_headers()
    result: dict[str, Any] = {"url": url, "api_key_required": bool(headers)}
    if show_key and headers:
        result["api_key"] = headers["x-api-key"]
    if as_json:
        print_json(result)
        return
    console.print(url)
    if headers:
        console.print("send the API key in the x-api-key header" + (f": {result['api_key']}" if show_key else
                                                                    " (txpipe endpoint --show-key prints it)"))

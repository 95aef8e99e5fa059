"""doctor: a read-only preflight of an AWS account before the first deploy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.commands.pipeline import _parameters
from txpipe_cli.errors import OptionError
from txpipe_cli.humanize import plural
from txpipe_cli.output import console, fail, handle_errors, print_json

if TYPE_CHECKING:
    from txpipe_cli.aws.doctor import Report

SYMBOLS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}


@handle_errors
def doctor(
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Template parameter KEY=VALUE, as given to deploy (e.g. WarehouseMode=provisioned).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an AWS account before `txpipe deploy --target aws`: credentials, the region's services,
    an existing VPC's subnets and routes (with --param ExistingVpcId), your IAM permissions, the quotas
    the stack uses and the artifacts bucket name.

    One line per check: ✓ fine, ! a warning (deploy may still work), ✗ a blocker, each with what to do.
    Only reads: it creates and changes nothing. Exits 1 when any check is a blocker, else 0.
    """
    if target != "aws":
        raise OptionError("doctor checks an AWS account before deploying to it; the local target needs no account",
                          hint="run: txpipe doctor --target aws")
    from txpipe_cli.aws.client import AwsClient
    from txpipe_cli.aws.doctor import Doctor

    report = Doctor(AwsClient(), stage, parameters=_parameters(param or [])).run()
    if as_json:
        print_json(report.to_dict())
    else:
        _render(report)
    if report.blockers:
        first = report.blockers[0]
        # The blocker's own way out: never "run txpipe doctor", which is the command that just ran.
        fix = f" ({first.fix})" if first.fix else ""
        blockers = plural(len(report.blockers), "blocker")
        fail(f"not ready to deploy: {blockers}, first {first.check}: {first.reason}{fix}")


def _render(report: Report) -> None:
    for check in report.checks:
        fix = f" ({check.fix})" if check.fix and check.status != "ok" else ""
        console.print(f"{SYMBOLS[check.status]} {check.check}: {check.reason}{fix}", highlight=False, soft_wrap=True)
    if len(report.checks) > 1:  # stopped at the first check, its line says it all
        blockers, warnings = report.blockers, report.warnings
        verdict = (f"[red]not ready[/]: {plural(len(blockers), 'blocker')} ({', '.join(c.check for c in blockers)})"
                   if blockers else "[green]ready to deploy[/]")
        console.print(f"{verdict}, {plural(len(warnings), 'warning')}", highlight=False, soft_wrap=True)

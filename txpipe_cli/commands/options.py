"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

TargetOpt = Annotated[str, typer.Option("--target", "-t", envvar="TXPIPE_TARGET",
                                        help="Where the pipeline runs: local (this machine, the default) or aws.")]
StageOpt = Annotated[str, typer.Option("--stage", envvar="TXPIPE_STAGE",
                                       help="AWS stage (part of every resource name); ignored locally.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

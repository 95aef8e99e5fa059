"""package: build the Lambda artifact (handlers + Linux wheels) without deploying it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from txpipe_cli import config
from txpipe_cli.commands.options import JsonOpt
from txpipe_cli.output import console, err_console, folding_table, handle_errors, print_json


@handle_errors
def package(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", envvar="TXPIPE_BUILD_DIR", show_default=False,
        help="Directory the zip is written to. Default: build/ in the state directory (where deploy builds; "
             "destroy removes it).")] = None,
    python_version: Annotated[str, typer.Option("--python-version",
                                                help="Python of the Lambda runtime, MAJOR.MINOR.")] = "3.12",
    as_json: JsonOpt = False,
) -> None:
    """Build the Lambda artifact from lambdas/ plus Linux wheels of its dependencies, without deploying.

    The zip is reproducible and named by its content hash; all five functions share it.
    Wheels are cached (~/.cache/txpipe/wheels, or $TXPIPE_WHEEL_CACHE), so a rebuild is offline.
    """
    from txpipe_cli.aws import package as packaging

    with err_console.status("building the Lambda artifact...") as status:
        result = packaging.build(output or config.home() / "build", python_version=python_version,
                                 progress=status.update)
    if as_json:
        print_json(result)
        return
    table = folding_table("function", "handler", "zip", title=f"Lambda artifact (CPython {result['python']}, "
                  f"{result['platform']}, {result['bytes'] / 1_048_576:.1f} MiB)")
    for name, function in result["functions"].items():
        table.add_row(name, function["handler"], Path(function["zip"]).name)
    console.print(table)
    zips = sorted({function["zip"] for function in result["functions"].values()})
    console.print(f"wrote {', '.join(zips)}\nsha256 {result['sha256']}", highlight=False, soft_wrap=True)

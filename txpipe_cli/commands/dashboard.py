"""dashboard: serve the analysts' page on this machine until Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
from typing import Annotated

import typer

from txpipe_cli.commands.options import JsonOpt, StageOpt, TargetOpt
from txpipe_cli.commands.warehouse import last_sync_label
from txpipe_cli.errors import TxpipeError
from txpipe_cli.output import console, err_console, handle_errors, stopped
from txpipe_cli.targets import get_target

DEFAULT_PORT = 8050
CACHE_VARIABLE = "TXPIPE_DASHBOARD_CACHE_SECONDS"  # how long a read is reused (default 5; 0: never, as benchmarks do)


@handle_errors
def dashboard(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = DEFAULT_PORT,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    target: TargetOpt = "local",
    stage: StageOpt = "dev",
    as_json: JsonOpt = False,
) -> None:
    """Serve the analysts' dashboard on http://127.0.0.1:PORT/ until Ctrl-C: pick a state (by name, code,
    on the map, or ?state=TX in the URL) and see its top 3 pizza types, pizzas sold, gross sales, per
    capita, unique customers and rank, with how fresh the views are and a button to refresh them.

    It is yours alone: the URL it prints carries a secret token, new each run; the browser that opens it
    keeps it in a cookie, and anyone else on this machine gets 401. It runs on this machine for both
    targets and reads through the ops function, as `txpipe report` does (JSON under it: /api/states,
    /api/states/TX, /api/freshness). A read is reused for 5 s ($TXPIPE_DASHBOARD_CACHE_SECONDS): the views
    change only when refreshed. With --json, prints one line {"url": ...} (with the token) once it listens.
    """
    import asyncio
    import secrets
    import threading

    from txpipe_cli.dashboard.server import DashboardApp, Reader
    from txpipe_cli.guarded_http import Limits, build_server, listen_tcp
    from txpipe_cli.ops_client import OpsClient

    chosen = get_target(target, stage=stage)
    reader = Reader(OpsClient(chosen), lambda: chosen.invoke("refresh", {"source": "txpipe.dashboard"}),
                    ttl=float(os.environ.get(CACHE_VARIABLE, "5")), last_sync_label=last_sync_label(target))
    reader.states()  # nothing deployed, or the runtime down: one line now, not a broken page later
    try:
        sock = listen_tcp(port, Limits().backlog)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TxpipeError(f"port {port} on 127.0.0.1 is in use", hint="run: txpipe dashboard --port 0") from None
        raise
    token = secrets.token_urlsafe(32)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
    if as_json:  # one line, flushed: a script reads the URL while the server runs
        typer.echo(json.dumps({"url": url}))
    else:
        # soft_wrap: the URL stays one line to copy, however narrow the terminal.
        console.print(f"dashboard at [bold]{url}[/] (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    if open_browser:
        # In a thread: a console browser (lynx, w3m) runs until it quits, and the page needs the server.
        threading.Thread(target=_open_browser, args=(url,), daemon=True).start()
    app = DashboardApp(reader, sock.getsockname()[1], token)
    try:
        # uvicorn stops gracefully on Ctrl-C, then raises it again: here, as KeyboardInterrupt.
        asyncio.run(build_server(app).serve(sockets=[sock]))
    except KeyboardInterrupt:
        stopped()  # Ctrl-C is how the dashboard stops: not an error
    finally:
        app.close()


def _open_browser(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        # On stderr: with --json, stdout stays the one line a script reads.
        err_console.print(f"no browser found on this machine: open {url} in one", highlight=False)

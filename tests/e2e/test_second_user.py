"""Another Unix user on the operator's machine (issue 15): with a deployment and its dashboard running, a second
user can neither read the analysts' figures nor start a refresh (401: the dashboard wants its run's token),
nor reach anything under the state directory: not the lock (which would let them block deploy and destroy),
not the invoke socket, not a listing.

The home sits in a directory every user can enter (as a home directory under /home may be), so what keeps the
second user out is txpipe's own modes, not pytest's 0700 temporary directory. The second user runs the
system's Python (the venv lives under root's home, which they cannot enter), stdlib only.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboard import Dashboard
from tests.support.local_cli import Cli, wait_for
from tests.support.unix_user import OTHER_USER, answer, as_other, why_not
from tests.support.unix_user import other_user as make_other_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="making and becoming a second Unix user needs root")

# As the second user: the dashboard's answers without the token (argv[1]: its address, no token).
HTTP_CLIENT = """
import json, sys, urllib.error, urllib.request
base = sys.argv[1]
def status(request):
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
print(json.dumps({
    "GET /api/states/TX": status(base + "api/states/TX"),
    "GET /api/freshness": status(base + "api/freshness"),
    "GET /": status(base),
    "POST /api/refresh": status(urllib.request.Request(base + "api/refresh", data=b"", method="POST",
                                                       headers={"X-Txpipe-Dashboard": "1"})),
}))
"""

# As the second user: take the home's lock and hold it (argv[2] seconds), or say why not; then what else they reach.
LOCK_CLIENT = """
import fcntl, json, os, socket, sys, time
home, hold, sock = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
handles = []
def lock():
    handle = open(os.path.join(home, ".lock"))  # a read handle is all flock needs
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handles.append(handle)
result = {"parent listing": attempt(lambda: os.listdir(os.path.dirname(home))), "lock": attempt(lock),
          "home listing": attempt(lambda: os.listdir(home)),
          "invoke socket": attempt(lambda: socket.socket(socket.AF_UNIX).connect(sock))}
print(json.dumps(result), flush=True)
if handles:
    time.sleep(hold)
"""


@pytest.fixture(scope="session")
def other_user() -> pwd.struct_passwd:
    """A second, unprivileged Unix user (made once; kept, as useradd's users are, for the next run)."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    return make_other_user()


@pytest.fixture(scope="module")
def cli(other_user: pwd.struct_passwd) -> Iterator[Cli]:
    """A deployment whose home's parent every user may enter and list (0755, not pytest's 0700 directory)."""
    parent = Path(tempfile.mkdtemp(prefix="txpipe-operator-"))
    os.chmod(parent, 0o755)  # noqa: S103 - open, so that only txpipe's own modes keep the second user out
    cli = Cli(parent / "home")
    try:
        cli.json("deploy")
        cli.json("seed", "--generate", "50")
        cli.json("refresh-views")
        yield cli
    finally:
        if (cli.home / "local.json").exists():
            cli("destroy", "--yes")
        shutil.rmtree(parent, ignore_errors=True)


def refreshed_at(cli: Cli) -> Any:
    return cli.json("report", "-s", "TX")["freshness"]["views_refreshed_at"]


def test_a_second_user_gets_401_and_starts_no_refresh_while_the_operator_gets_in(
        cli: Cli, dashboard: Dashboard, other_user: pwd.struct_passwd) -> None:
    before = refreshed_at(cli)
    seen = answer(as_other(other_user, HTTP_CLIENT, dashboard.base))
    print(f"\nthe second user ({OTHER_USER}) without the token: {seen}")
    assert seen == {"GET /api/states/TX": 401, "GET /api/freshness": 401, "GET /": 401, "POST /api/refresh": 401}
    time.sleep(1.0)  # a refresh started would be running now, or done
    assert dashboard.json("/api/freshness")["refreshing"] is False and refreshed_at(cli) == before

    # The operator, with the printed URL (its cookie): the figures, and a refresh that does happen.
    status, _, body = dashboard.request("GET", "/api/states/TX")
    assert status == 200 and json.loads(body)["state"] == "TX"
    status, _, _ = dashboard.request("POST", "/api/refresh", {"X-Txpipe-Dashboard": "1"})
    assert status == 202
    wait_for(lambda: refreshed_at(cli) != before, what="the operator's refresh")


def test_a_second_user_cannot_take_the_lock_or_reach_the_home(cli: Cli, other_user: pwd.struct_passwd) -> None:
    """The second user reaches the home's parent, but not the home: no lock to hold (a held one would block
    deploy and destroy), no listing, no invoke socket; the operator's deploy meanwhile goes through."""
    proc = as_other(other_user, LOCK_CLIENT, str(cli.home), "30", str(cli.state.invoke_socket))
    try:
        seen = answer(proc)
        print(f"\nthe second user ({OTHER_USER}) under the home: {seen}")
        assert seen == {"parent listing": "ok", "lock": "PermissionError", "home listing": "PermissionError",
                        "invoke socket": "PermissionError"}
        assert cli.json("deploy")["changed"] is False  # not blocked
    finally:
        proc.kill()
        proc.communicate(timeout=10)

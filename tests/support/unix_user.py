"""A second Unix user on the operator's machine, for trials of what another local user can reach.

Made once with useradd (a system user, no home, no shell) and kept, as useradd's users are. It runs the
system's Python, stdlib only: the project's virtualenv may sit under root's home, which it cannot enter.

Support code (tests/support/): tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from typing import Any

OTHER_USER = "txpipe-other"
PYTHON = "/usr/bin/python3"


def why_not() -> str | None:
    """Why no second user can be made and become here, or None."""
    if os.geteuid() != 0:
        return "making and becoming a second Unix user needs root"
    if not (shutil.which("useradd") and os.access(PYTHON, os.X_OK)):
        return f"needs useradd and {PYTHON}"
    return None


def other_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",  # noqa: S607
                        OTHER_USER], check=True, capture_output=True)
        return pwd.getpwnam(OTHER_USER)


def as_other(user: pwd.struct_passwd, script: str, *args: str) -> subprocess.Popen[str]:
    """`script` run by the system's Python as `user`, with no supplementary group; its output piped."""
    return subprocess.Popen([PYTHON, "-c", script, *args], user=user.pw_uid, group=user.pw_gid,  # noqa: S603
                            extra_groups=[], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON line the script printed first."""
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError(f"the second user's script said nothing: {proc.stderr.read() if proc.stderr else ''}")
    return json.loads(line)

"""The operator's side of the runtime's control socket: HTTP over a Unix socket (0600).

`txpipe` reaches the Invoke API and /health here; no other local user can open the socket.
A runtime that is gone, hung or dies mid-call becomes one TxpipeError line saying which.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from txpipe_cli.errors import TxpipeError


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def call(path: Path, method: str, url: str, payload: Any = None, *, timeout: float,
         what: str) -> tuple[int, dict[str, str], Any]:
    """One request on the control socket: (status, headers, JSON body). `what` names the call in errors."""
    conn = UnixHTTPConnection(path, timeout)
    body = None if payload is None else json.dumps(payload).encode()
    try:
        try:
            conn.request(method, url, body=body, headers={"Content-Type": "application/json"})
        except (FileNotFoundError, ConnectionRefusedError):
            raise TxpipeError("the local runtime is not running", hint="run: txpipe deploy, which restarts it") \
                from None
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw or b"null")
    except TimeoutError:
        raise TxpipeError(f"the local runtime did not answer {what} within {timeout:g} s",
                          hint="run: txpipe status, then txpipe deploy to replace a hung runtime") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise TxpipeError(f"the local runtime stopped while running {what} ({type(exc).__name__})",
                          hint="run: txpipe deploy, then the command again: running it again is safe") from None
    except ValueError:
        raise TxpipeError(f"the local runtime answered {what} with something other than JSON") from None
    finally:
        conn.close()

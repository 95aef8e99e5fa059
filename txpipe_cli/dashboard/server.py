"""`txpipe dashboard`'s HTTP side: the analysts' page, its assets, and the JSON API under it.

Served by the same server as the local orders API (txpipe_cli/guarded_http.py: uvicorn with its guarded
protocol and limits), on 127.0.0.1 only, by a process on the operator's machine. Every figure is read
through the target's ops function, so the page shows what `txpipe report --json` shows, on the local
target and on AWS alike (where the warehouse is private to the stack's VPC, and a public read route
would put the analysts' numbers on the internet).

- `GET /` the page; `GET /static/<file>` its scripts, styles and map (shipped in the package).
- `GET /api/states`: {"ranking", "states": [51 rows by rank]}, as `report --all --json`.
- `GET /api/states/{state}`: one state with its top 3 pizza types, as `report --state STATE --json`; the state
  as `report --state` takes it (a code, a name or the unambiguous start of one: `TX`, `Texas`, `tex`), anything
  else 404 with the line `report` would print ("ZZ is not a US state ...", "new matches New Hampshire, ...")
  and the candidates' codes.
- `GET /api/freshness`: views refreshed at, orders not in them yet, last sync (and what the target calls it:
  `last_sync_label`), a refresh running.
- `POST /api/refresh` (header `X-Txpipe-Dashboard: 1`, which a cross-site form cannot send): starts a
  refresh of the views; 202, or 409 while one runs.

The dashboard is the operator's alone (issue 15): 127.0.0.1 is every local user's, so each run has a
secret token (`txpipe dashboard` prints the URL carrying it). The page's first load with it (`/?token=...`)
sets an HttpOnly, SameSite=Strict cookie and redirects to the same URL without the token, so it stays out of
history and referrers; every later request is let in by that cookie (or a `token` query parameter, for a
script). Anything else gets 401, the page included; only the static assets, which hold no figures, are
public. Tokens are compared in constant time.

Reads are cached briefly (the views change only when refreshed) so a state change costs one function
call; a refresh runs in the background and empties the caches when it ends. Requests naming another
host are refused (a DNS-rebinding page cannot read the API), and the page may load nothing but itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from lambdas.core.contract import RANKING
from lambdas.core.reasons import one_line
from txpipe_cli.errors import TxpipeError
from txpipe_cli.guarded_http import respond
from txpipe_cli.states import StateNotFound, resolve

if TYPE_CHECKING:
    from txpipe_cli.ops_client import OpsClient

log = logging.getLogger("txpipe.dashboard")

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
REFRESH_HEADER = b"x-txpipe-dashboard"
TOKEN_PARAMETER = "token"  # noqa: S105 - the query parameter's name, not a secret
# Why a request was refused, and where the way in is: nowhere but the operator's terminal.
UNAUTHORIZED = ("this dashboard is its operator's alone: open the URL that `txpipe dashboard` printed in the "
                "terminal that started it (http://127.0.0.1:PORT/?token=..., a new token each run)")
UNAUTHORIZED_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>txpipe dashboard</title>
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body><h1><span class="brand">txpipe</span> This dashboard is its operator's alone</h1>
<p>Open the URL that <code>txpipe dashboard</code> printed in the terminal that started it
(<code>http://127.0.0.1:PORT/?token=...</code>). The token is new each run: a link from an earlier run no
longer opens it.</p></body></html>
"""


class Reader:
    """What the page shows, read through the target's ops function (`ops`), as JSON, cached for `ttl` seconds;
    and the one background refresh of the views (`refresh`: invokes the refresh function)."""

    def __init__(self, ops: OpsClient, refresh: Callable[[], object], ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, last_sync_label: str = "last sync") -> None:
        self.ops, self.refresh, self.ttl, self.clock = ops, refresh, ttl, clock
        self.last_sync_label = last_sync_label  # commands.warehouse.last_sync_label: true for the target
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._refresh: threading.Thread | None = None
        self.refresh_error: str | None = None

    def _cached(self, key: str, read: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        value = read()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def states(self) -> dict[str, Any]:
        return self._cached("states", lambda: {"ranking": RANKING,
                                                **self.ops.report(all=True, freshness=False).to_dict()})

    def state(self, code: str) -> dict[str, Any]:
        return self._cached(f"state:{code}",
                            lambda: self.ops.report(states=[code], freshness=False).states[0].to_dict())

    def freshness(self) -> dict[str, Any]:
        fresh = self._cached("freshness", lambda: self.ops.freshness().to_dict())
        return {**fresh, "last_sync_label": self.last_sync_label, "refreshing": self.refreshing,
                "refresh_error": self.refresh_error}

    @property
    def refreshing(self) -> bool:
        return self._refresh is not None and self._refresh.is_alive()

    def start_refresh(self) -> bool:
        """Starts a refresh of the views in the background; False when one is running."""
        with self._lock:
            if self.refreshing:
                return False
            self._refresh = threading.Thread(target=self._run_refresh, name="dashboard-refresh", daemon=True)
            self._refresh.start()
        return True

    def _run_refresh(self) -> None:
        try:
            self.refresh()
            self.refresh_error = None
        except Exception as exc:  # noqa: BLE001 - shown on the page; the next refresh may succeed
            self.refresh_error = one_line(exc)
            log.warning("refresh failed: %s", self.refresh_error)
        finally:
            with self._lock:
                self._cache.clear()


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """Every shipped file by URL path, read once (a few hundred KB): its bytes, type and ETag. The page
    itself (index.html) is among them, served at / only."""
    files = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            files["/static/" + path.relative_to(STATIC).as_posix()] = (body, CONTENT_TYPES[path.suffix], etag)
    return files


def _cookie_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The values of the cookie `name` in a request's Cookie headers (other sites on 127.0.0.1 set theirs
    too, in any shape: read leniently, never parsed as a whole)."""
    values = []
    for key, value in headers:
        if key == b"cookie":
            for pair in value.split(b";"):
                found, equals, rest = pair.strip().partition(b"=")
                if equals and found == name:
                    values.append(rest.strip())
    return values


class DashboardApp:
    """The ASGI app. Blocking reads run on a small thread pool (bounded function calls at once). `token` is
    this run's secret: a request needs it (or the cookie carrying it) for anything but a static asset."""

    def __init__(self, reader: Reader, port: int, token: str, workers: int = 4) -> None:
        self.reader = reader
        self.files = _static_files()
        self.page = self.files.pop("/static/index.html")  # not an asset: the page is behind the token
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}
        self.token = token.encode()
        # Cookies ignore ports: one name per port, so two dashboards (or runs) never overwrite each other's.
        self.cookie = f"txpipe_dashboard_{port}"
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="txpipe-dashboard")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        if headers.get(b"host") not in self.hosts:
            await self._json(send, 421, {"error": "this dashboard answers only to 127.0.0.1 and localhost"})
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/static/"):  # the assets: code, styles and the map's shapes, no figures
            if method != "GET":
                await self._json(send, 405, {"error": f"{method} is not allowed on {path}"}, {"Allow": "GET"})
            elif path in self.files:
                await self._file(send, headers, self.files[path])
            else:
                await self._json(send, 404, {"error": f"no file at {path}"})
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        tokens = [value for key, value in query if key == TOKEN_PARAMETER]
        from_query = bool(tokens) and all(self._valid(value.encode()) for value in tokens)
        if not (from_query or any(self._valid(v) for v in _cookie_values(scope["headers"], self.cookie.encode()))):
            await self._unauthorized(send, path, headers)
            return
        if tokens and path == "/" and method == "GET":
            await self._enter(send, query, set_cookie=from_query)
            return
        if path == "/api/refresh":
            await self._refresh(send, method, headers)
            return
        if method != "GET":
            await self._json(send, 405, {"error": f"{method} is not allowed on {path}"}, {"Allow": "GET"})
            return
        if path == "/":
            await self._file(send, headers, self.page)
        elif path == "/api/states":
            await self._read(send, self.reader.states)
        elif path.startswith("/api/states/"):
            try:  # as `report --state` takes it: a code, a name or the start of one (txpipe_cli/states.py)
                code = resolve(path.removeprefix("/api/states/")).code
            except StateNotFound as exc:
                await self._json(send, 404, {"error": str(exc), "candidates": [s.code for s in exc.candidates]})
                return
            await self._read(send, lambda: self.reader.state(code))
        elif path == "/api/freshness":
            await self._read(send, self.reader.freshness)
        else:
            await self._json(send, 404, {"error": f"no page at {path}"})

    def _valid(self, token: bytes) -> bool:
        return hmac.compare_digest(token, self.token)  # constant time: no timing says how much of it matched

    async def _enter(self, send: Any, query: list[tuple[str, str]], set_cookie: bool) -> None:
        """The first load: the cookie, then the same URL without the token (out of history and referrers)."""
        rest = urlencode([(key, value) for key, value in query if key != TOKEN_PARAMETER])
        headers = {"location": "/" + (f"?{rest}" if rest else ""), "cache-control": "no-store", **SECURITY_HEADERS}
        if set_cookie:
            headers["set-cookie"] = f"{self.cookie}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/"
        await respond(send, 303, b"", headers)

    async def _unauthorized(self, send: Any, path: str, headers: dict[bytes, bytes]) -> None:
        """401: JSON, or for a browser asking for the page a short page saying the same."""
        # A scheme of its own: "Basic" would make a browser ask for a user name and password.
        extra = {"www-authenticate": 'Token realm="txpipe dashboard"'}
        if path == "/" and b"text/html" in headers.get(b"accept", b""):
            await respond(send, 401, UNAUTHORIZED_PAGE, {"content-type": CONTENT_TYPES[".html"],
                                                         "cache-control": "no-store", **SECURITY_HEADERS, **extra})
            return
        await self._json(send, 401, {"error": UNAUTHORIZED}, extra)

    @staticmethod
    async def _file(send: Any, headers: dict[bytes, bytes], file: tuple[bytes, str, str]) -> None:
        body, kind, etag = file
        # Revalidated on every load (an upgrade shows at once); unchanged files cost a 304.
        fresh = headers.get(b"if-none-match") == etag.encode()
        await respond(send, 304 if fresh else 200, b"" if fresh else body,
                      {"content-type": kind, "cache-control": "no-cache", "etag": etag, **SECURITY_HEADERS})

    async def _read(self, send: Any, read: Callable[[], Any]) -> None:
        try:
            data = await asyncio.get_running_loop().run_in_executor(self.pool, read)
        except TxpipeError as exc:  # e.g. the runtime is down: the page says so and retries
            await self._json(send, 503, {"error": exc.line()})
            return
        except Exception as exc:  # noqa: BLE001 - one line for the page, the traceback in the log
            log.exception("read failed")
            await self._json(send, 502, {"error": f"{type(exc).__name__}: {one_line(exc)}"})
            return
        await self._json(send, 200, data)

    async def _refresh(self, send: Any, method: str, headers: dict[bytes, bytes]) -> None:
        if method != "POST":
            await self._json(send, 405, {"error": "use POST"}, {"Allow": "POST"})
        elif headers.get(REFRESH_HEADER) != b"1":
            await self._json(send, 403, {"error": "a refresh needs the X-Txpipe-Dashboard: 1 header"})
        elif self.reader.start_refresh():
            await self._json(send, 202, {"refreshing": True})
        else:
            await self._json(send, 409, {"error": "a refresh is already running"})

    @staticmethod
    async def _json(send: Any, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        await respond(send, status, json.dumps(data).encode(),
                       {"cache-control": "no-store", **SECURITY_HEADERS, **(headers or {})})

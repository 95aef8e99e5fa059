"""A loopback protocol shim that lets redshift-connector talk to a plain PostgreSQL server.

We have no Redshift in tests, and the warehouse code that runs against Redshift goes
through redshift-connector, which does not talk to PostgreSQL as is. This proxy sits on
127.0.0.1 between the driver and the test server and changes exactly two things:

- the client's StartupMessage: redshift-connector sends Redshift-only parameters
  (client_protocol_version, driver_version, os_version, driver_discovery_version,
  plugin_name, ...) that PostgreSQL rejects as unknown settings. The shim keeps only
  the parameters PostgreSQL knows (user, database, application_name, client_encoding,
  options, DateStyle, TimeZone, extra_float_digits) and records the dropped ones.
  An SSLRequest or GSSENCRequest is answered "N" (the shim never does TLS).
- the server's ParameterStatus "server_version": Debian's "15.18 (Debian 15.18-1...)"
  is not a version packaging can parse, which the driver needs. The shim reports the
  version Redshift reports ("8.0.2" by default), so the driver behaves as on Redshift.

Everything else passes through byte for byte; once the server says ReadyForQuery the
first time, the rest of the session is copied without looking at it (server_version
cannot change later). The shim listens on 127.0.0.1 only, on a free port, accepts at
most `max_connections` clients at once, and `stop()` closes every socket and ends its
thread within a few seconds.
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
from dataclasses import dataclass, field

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP_BYTES = 10_000  # PostgreSQL's own limit on a startup packet
# Startup parameters PostgreSQL accepts (besides any GUC, of which we keep these few).
POSTGRES_STARTUP_PARAMETERS = frozenset({
    "user", "database", "options", "application_name", "client_encoding", "DateStyle", "TimeZone",
    "extra_float_digits",
})


def rewrite_startup(payload: bytes) -> tuple[bytes, dict[str, str], list[str]]:
    """A StartupMessage body (after the length word) -> (new message, the client's parameters, the dropped names)."""
    (protocol,) = struct.unpack("!i", payload[:4])
    if protocol != PROTOCOL_3:
        raise ValueError(f"unsupported startup protocol {protocol}")
    fields = payload[4:].split(b"\x00")
    # key\0value\0 ... \0 -> pairs, then the terminating empty string(s)
    pairs = [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i]]
    kept = [(k, v) for k, v in pairs if k.decode() in POSTGRES_STARTUP_PARAMETERS]
    dropped = [k.decode() for k, _ in pairs if k.decode() not in POSTGRES_STARTUP_PARAMETERS]
    body = struct.pack("!i", PROTOCOL_3) + b"".join(k + b"\x00" + v + b"\x00" for k, v in kept) + b"\x00"
    return struct.pack("!i", len(body) + 4) + body, {k.decode(): v.decode() for k, v in pairs}, dropped


def plain_version(value: str) -> str:
    """'15.18 (Debian 15.18-1.pgdg120+1)' -> '15.18'."""
    match = re.match(r"\d+(\.\d+)*", value)
    return match.group(0) if match else value


@dataclass
class RedshiftShim:
    """A started shim: point redshift-connector at (host, port) instead of the server's own port."""

    upstream_port: int
    server_version: str | None = "8.0.2"  # None: keep the server's own number, without the distribution suffix
    max_connections: int = 32
    host: str = field(default="127.0.0.1", init=False)
    port: int = field(default=0, init=False)
    connections: int = field(default=0, init=False)  # accepted so far
    dropped_parameters: set[str] = field(default_factory=set, init=False)
    startup_parameters: dict[str, str] = field(default_factory=dict, init=False)  # the last client's, as sent
    versions_rewritten: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="redshift-shim", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._active = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> RedshiftShim:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> RedshiftShim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one client ------------------------------------------------------------------------
    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._active >= self.max_connections:
            client_w.close()
            return
        self._active += 1
        self.connections += 1
        self._writers.add(client_w)
        server_w: asyncio.StreamWriter | None = None
        try:
            startup = await self._read_startup(client_r, client_w)
            if startup is None:
                return
            server_r, server_w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), timeout=10)
            self._writers.add(server_w)
            server_w.write(startup)
            await server_w.drain()
            await asyncio.gather(self._pipe(client_r, server_w), self._server_to_client(server_r, client_w))
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            pass  # a client or server went away, or spoke something we do not proxy: drop the pair
        finally:
            self._active -= 1
            for writer in (client_w, server_w):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _read_startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """Reads the client's first packets up to its StartupMessage; returns it rewritten (None: nothing to do)."""
        while True:
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            if not 8 <= length <= MAX_STARTUP_BYTES:
                raise ValueError("bad startup packet length")
            payload = await reader.readexactly(length - 4)
            (code,) = struct.unpack("!i", payload[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")  # no TLS here: the client may continue in plain text
                await writer.drain()
                continue
            if code == CANCEL_REQUEST:
                return None  # a cancel key for a backend we would have to track: not supported
            message, parameters, dropped = rewrite_startup(payload)
            self.dropped_parameters.update(dropped)
            self.startup_parameters = parameters
            return message

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _server_to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Frames the server's messages until the first ReadyForQuery, rewriting server_version; then copies."""
        while True:
            header = await reader.readexactly(5)
            kind, length = header[:1], struct.unpack("!i", header[1:])[0]
            body = await reader.readexactly(length - 4)
            if kind == b"S" and body.startswith(b"server_version\x00"):
                value = body[len(b"server_version\x00"):-1].decode()
                new = self.server_version if self.server_version is not None else plain_version(value)
                body = b"server_version\x00" + new.encode() + b"\x00"
                header = kind + struct.pack("!i", len(body) + 4)
                self.versions_rewritten += 1
            writer.write(header + body)
            await writer.drain()
            if kind in (b"Z", b"E"):  # ready (startup done) or a startup error (the server will hang up)
                break
        await self._pipe(reader, writer)

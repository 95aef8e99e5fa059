"""A loopback protocol shim that lets redshift-connector talk to a plain PostgreSQL server.

We have no Redshift in tests, and the warehouse code that runs against Redshift goes
through redshift-connector, which does not talk to PostgreSQL as is. This proxy sits on
127.0.0.1 between the driver and the test server and changes exactly three things:

- the client's StartupMessage: redshift-connector sends Redshift-only parameters
  (client_protocol_version, driver_version, os_version, driver_discovery_version,
  plugin_name, ...) that PostgreSQL rejects as unknown settings. The shim keeps only
  the parameters PostgreSQL knows (user, database, application_name, client_encoding,
  options, DateStyle, TimeZone, extra_float_digits) and records the dropped ones.
  An SSLRequest is answered "N" (plain text), or, given a `tls` context, "S" and the
  connection goes on in TLS with that context's certificate (tests/support/tls.py makes one for
  Redshift's host names, so the driver's verify-full runs as against Redshift).
  A GSSENCRequest is answered "N".
- the server's ParameterStatus "server_version": Debian's "15.18 (Debian 15.18-1...)"
  is not a version packaging can parse, which the driver needs. The shim reports the
  version Redshift reports ("8.0.2" by default), so the driver behaves as on Redshift.
- Redshift's `COPY t (cols) FROM 's3://bucket/path' IAM_ROLE '<arn>' CSV [GZIP] TIMEFORMAT 'auto'
  NULL AS '\\0'`, carried out as Redshift would, in the client's own transaction: every object
  under the path (a key prefix; none is an error) is read from `s3` (moto's, in the tests),
  gunzipped and fed to `COPY t (cols) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (cols))`; the
  role must be one of `copy_roles`. Any other option (the default NULL AS '\\N' too, whose CSV
  quoting rules it cannot vouch for) is refused with a server error, never ignored. On the wire,
  the Parse is rewritten to that COPY FROM STDIN; the server's CopyInResponse is swallowed (the
  driver knows no COPY sub-protocol) and answered with the data, CopyDone and a Sync (the server
  ignored the client's while copying in). Each COPY done is recorded in `copies`.

Everything else passes through unchanged. The shim listens on 127.0.0.1 only, on a free
port, accepts at most `max_connections` clients at once, and `stop()` closes every socket
and ends its thread within a few seconds. The COPY's reading and its wire bookkeeping live in
tests/support/redshift_copy.py; this module is the proxy (startup, TLS, framing, server_version).
Support code: tests and benchmarks may import it; it imports no test module.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.support.redshift_copy import CopyRefused, CopySession, S3Copy, S3CopySpec

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


def _message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


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
    s3: Any = None  # the boto3 S3 client COPY reads with (None: COPY from S3 is refused)
    copy_roles: frozenset[str] = frozenset()  # the IAM roles COPY may name
    copies: list[S3Copy] = field(default_factory=list, init=False)  # every COPY from S3 carried out
    tls: ssl.SSLContext | None = None  # server side: answer an SSLRequest with TLS (None: refuse it, plain text)
    tls_sessions: int = field(default=0, init=False)  # connections that went on in TLS

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
            session = CopySession(self)
            await asyncio.gather(self._client_to_server(client_r, server_w, session),
                                 self._server_to_client(server_r, client_w, server_w, session))
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
            if code == SSL_REQUEST and self.tls is not None:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.tls)  # the reader reads the same connection, now decrypted
                self.tls_sessions += 1
                continue
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

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                session: CopySession) -> None:
        """Frames the client's messages (after its startup packet, all are typed) so COPY can be rewritten."""
        try:
            while True:
                header = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)
                writer.write(_message(header[:1], session.client_message(header[:1], body)))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()  # the client went away: so does our side of its server session

    async def _server_to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                server: asyncio.StreamWriter, session: CopySession) -> None:
        """Frames the server's messages: rewrites server_version, answers CopyInResponse for a COPY from S3."""
        try:
            while True:
                header = await reader.readexactly(5)
                kind, length = header[:1], struct.unpack("!i", header[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind == b"S" and body.startswith(b"server_version\x00"):
                    value = body[len(b"server_version\x00"):-1].decode()
                    new = self.server_version if self.server_version is not None else plain_version(value)
                    body = b"server_version\x00" + new.encode() + b"\x00"
                    self.versions_rewritten += 1
                elif kind == b"G" and session.awaiting:
                    await self._copy_in(session, session.awaiting.popleft(), server)
                    continue  # the driver knows no COPY sub-protocol: it never sees this message
                elif kind == b"C" and session.copied is not None and body.startswith(b"COPY "):
                    self.copies.append(S3Copy(*session.copied, int(body[5:-1])))
                    session.copied = None
                elif kind == b"Z":
                    session.awaiting.clear()  # whatever was not executed (an error) will not be
                    session.copied = None
                writer.write(_message(kind, body))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async def _copy_in(self, session: CopySession, spec: S3CopySpec, server: asyncio.StreamWriter) -> None:
        """Feeds the S3 objects to the server's COPY FROM STDIN (or fails it), then the Sync the server needs."""
        try:
            keys, data = await asyncio.get_running_loop().run_in_executor(None, session.read_objects, spec)
        except Exception as exc:  # noqa: BLE001 - S3's refusal becomes the statement's error, as on Redshift
            message = str(exc) if isinstance(exc, CopyRefused) else f"S3 read failed: {exc}"
            server.write(_message(b"f", b"redshift shim: " + message.encode() + b"\x00") + _message(b"S"))
            await server.drain()
            return
        for start in range(0, len(data), 1 << 16):
            server.write(_message(b"d", data[start:start + (1 << 16)]))
            await server.drain()
        server.write(_message(b"c") + _message(b"S"))
        await server.drain()
        session.copied = (f"s3://{spec.bucket}/{spec.prefix}", spec.role, keys)  # recorded with the server's count

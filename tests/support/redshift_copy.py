"""Redshift's `COPY ... FROM 's3://...'` as the Redshift shim (tests/support/redshift_shim.py) carries it out.

`parse_s3_copy` reads the statement (refusing, with CopyRefused, any option the shim does not carry out as Redshift
would), `CopySession` follows one client's prepared COPY statements and portals on the wire and reads the objects
under the S3 prefix; `S3Copy` is the record of one COPY done. Support code: tests and benchmarks may import it
(through the shim); it imports no test module.
"""

from __future__ import annotations

import gzip
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.redshift_shim import RedshiftShim

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>[0-9]+)"
                    r"|(?P<punct>[(),;]))")
_S3_PATH = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\x00]+)$")
_IS_S3_COPY = re.compile(r"^\s*COPY\b.*\bFROM\s+'s3://", re.I | re.S)
_NULL_AS_NUL = ("\\0", "\\000")


class CopyRefused(ValueError):
    """A COPY the shim does not carry out (its message becomes the server's error)."""


@dataclass(frozen=True)
class S3CopySpec:
    """A parsed `COPY <table> (<columns>) FROM 's3://...' ...` statement."""

    table: str
    columns: tuple[str, ...]
    bucket: str
    prefix: str
    role: str
    gzip: bool

    def postgres_copy(self) -> str:
        # Identifiers were matched as plain words by the tokenizer, so they need no quoting here.
        columns = ", ".join(self.columns)
        return f"COPY {self.table} ({columns}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({columns}))"


@dataclass(frozen=True)
class S3Copy:
    """One COPY from S3 the shim carried out: the path, the role, the objects it read, the rows loaded."""

    uri: str
    role: str
    keys: tuple[str, ...]
    rows: int


def _tokens(sql: str) -> list[tuple[str, str]]:
    out, at, text = [], 0, sql.rstrip().rstrip(";")
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if match is None:
            raise CopyRefused(f"cannot read the COPY statement at {text[at:at + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        out.append((kind, value[1:-1].replace("''", "'") if kind == "string" else value))
        at = match.end()
    return out


def parse_s3_copy(sql: str) -> S3CopySpec:
    """Parses a Redshift COPY from S3, refusing any option the shim does not carry out as Redshift would."""
    tokens = _tokens(sql)

    def take(kind: str, upper: str | None = None) -> str:
        if not tokens or tokens[0][0] != kind or (upper and tokens[0][1].upper() != upper):
            raise CopyRefused(f"expected {upper or kind} in the COPY statement")
        return tokens.pop(0)[1]

    def optional(word: str) -> bool:
        if tokens and tokens[0][0] == "word" and tokens[0][1].upper() == word:
            tokens.pop(0)
            return True
        return False

    take("word", "COPY")
    table = take("word")
    columns: list[str] = []
    if tokens and tokens[0] == ("punct", "("):
        tokens.pop(0)
        while True:
            columns.append(take("word"))
            if take("punct") == ")":
                break
    take("word", "FROM")
    path = _S3_PATH.match(take("string"))
    if path is None:
        raise CopyRefused("COPY FROM must name s3://bucket/prefix")
    options: dict[str, str] = {}
    while tokens:
        word = take("word").upper()
        if word in ("CSV", "GZIP"):
            options[word] = word
        elif word == "FORMAT":  # FORMAT [AS] CSV
            optional("AS")
            options["CSV"] = take("word", "CSV")
        elif word in ("IAM_ROLE", "TIMEFORMAT", "NULL"):
            if word != "IAM_ROLE":
                optional("AS")
            options[word] = take("string")
        else:
            raise CopyRefused(f"the shim does not carry out the COPY option {word}")
    for refused, why in (
        (not columns, "name the columns: the shim loads by column list only"),
        ("IAM_ROLE" not in options, "COPY from S3 needs IAM_ROLE (the shim knows no other authorization)"),
        ("CSV" not in options, "only CSV is carried out (not Redshift's default pipe-delimited text)"),
        (options.get("TIMEFORMAT") != "auto",
         f"TIMEFORMAT {options.get('TIMEFORMAT')!r}: only 'auto' is carried out (ISO 8601 in the data)"),
        (options.get("NULL") not in _NULL_AS_NUL,
         f"NULL AS {options.get('NULL')!r}: only '\\0' is carried out (no text field is NULL)"),
    ):
        if refused:
            raise CopyRefused(why)
    return S3CopySpec(table, tuple(columns), path["bucket"], path["key"], options["IAM_ROLE"], "GZIP" in options)


def refusal_sql(message: str) -> str:
    """A statement that fails with `message` (feature_not_supported) in place of a refused COPY."""
    text = "redshift shim: " + message.replace("$", "").replace("'", "''")
    return f"DO $shim$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = '{text}'; END $shim$"


def _cstring(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.index(b"\x00", at)
    return data[at:end], end + 1


class CopySession:
    """One client's prepared COPY statements and portals (extended protocol), and the COPYs awaiting data."""

    def __init__(self, shim: RedshiftShim) -> None:
        self.shim = shim
        self.statements: dict[bytes, S3CopySpec] = {}
        self.portals: dict[bytes, bytes] = {}
        self.awaiting: deque[S3CopySpec] = deque()
        self.copied: tuple[str, str, tuple[str, ...]] | None = None

    def client_message(self, kind: bytes, body: bytes) -> bytes:
        """Looks at (and may rewrite) one client message; returns its body."""
        if kind == b"P":
            name, at = _cstring(body, 0)
            query, at = _cstring(body, at)
            self.statements.pop(name, None)
            text = query.decode()
            if _IS_S3_COPY.match(text):
                try:
                    spec = parse_s3_copy(text)
                    if spec.role not in self.shim.copy_roles:
                        raise CopyRefused(f"not authorized to assume IAM Role {spec.role}")
                    if self.shim.s3 is None:
                        raise CopyRefused("no S3 behind this shim")
                    self.statements[name] = spec
                    text = spec.postgres_copy()
                except CopyRefused as exc:
                    text = refusal_sql(str(exc))
                body = name + b"\x00" + text.encode() + b"\x00" + body[at:]
        elif kind == b"B":
            portal, at = _cstring(body, 0)
            self.portals[portal] = _cstring(body, at)[0]
        elif kind == b"E":
            spec = self.statements.get(self.portals.get(_cstring(body, 0)[0], b"\xff"))
            if spec is not None:
                self.awaiting.append(spec)
        return body

    def read_objects(self, spec: S3CopySpec) -> tuple[tuple[str, ...], bytes]:
        """Every object under the prefix (Redshift's rule), gunzipped when GZIP is given, concatenated."""
        listed = self.shim.s3.list_objects_v2(Bucket=spec.bucket, Prefix=spec.prefix)
        keys = tuple(sorted(item["Key"] for item in listed.get("Contents", [])))
        if not keys:
            raise CopyRefused(f"The specified S3 prefix '{spec.prefix}' does not exist")
        parts = []
        for key in keys:
            data = self.shim.s3.get_object(Bucket=spec.bucket, Key=key)["Body"].read()
            parts.append(gzip.decompress(data) if spec.gzip else data)
        return keys, b"".join(parts)

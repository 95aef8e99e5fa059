"""The file `txpipe send` reads and the rejects file it writes (txpipe_cli/sender.py does the rest).

A file is one JSON document (an object: one order; an array: its items) or NDJSON (one JSON value a line).
Which one: the whole text parses as JSON, or else its first non-blank line parses on its own (NDJSON); if
neither, the file is one broken document and is refused whole, naming where the parser stopped.

In NDJSON each line stands alone: a line that is not JSON is an `Unreadable` item at its line number, refused
like any invalid order ("not valid JSON: <the parser's message>") while the other lines go through. It has no
order_id to give; --rejects writes its text as it was, so the rejects file can be fixed and sent as it is.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txpipe_cli.errors import TxpipeError, path_error
from txpipe_cli.send_ids import dumps, loads

# Line breaks as editors count them (so "line 4" is the line an editor shows as 4). Not str.splitlines(): it
# also breaks at U+2028, form feeds and the like, which JSON allows inside a string.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Unreadable:
    """An NDJSON line that is not a JSON value: its text as it was, and why it is refused."""

    text: str
    reason: str


@dataclass(frozen=True)
class OrderFile:
    """The items of an orders file and where each one sits in it."""

    items: list[Any]  # JSON values as read; an NDJSON line that does not parse is an Unreadable
    positions: list[int]
    position_kind: str  # "line" (NDJSON, 1-based) or "index" (a JSON array, or 0 for a lone object)
    id_scope: str = ""  # what tells this file's orders from another's identical ones (send_ids.assign)


def read_orders(path: Path) -> OrderFile:
    """The items in a JSON object/array or NDJSON file, with their positions; each is checked later."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # tolerate the BOM spreadsheet exports write
    except OSError as exc:
        raise path_error(exc, "read") from None
    except UnicodeDecodeError as exc:
        raise TxpipeError(f"cannot read {path}: not UTF-8 ({exc.reason} at byte {exc.start})",
                          hint=f"run: file {path}") from None
    try:
        data = loads(text)
        items = data if isinstance(data, list) else [data]
        return OrderFile(items, list(range(len(items))), "index")
    except RecursionError:
        raise TxpipeError(f"{path}: JSON nested too deep to be orders") from None
    except json.JSONDecodeError as whole_error:
        return _ndjson(path, text, whole_error)


def _ndjson(path: Path, text: str, whole_error: json.JSONDecodeError) -> OrderFile:
    items: list[Any] = []
    positions: list[int] = []
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        item = _line(line)
        if not positions and isinstance(item, Unreadable):
            # Not even the first line stands alone: one JSON document, broken where the parser says.
            raise TxpipeError(f"{path} is neither JSON nor NDJSON: {whole_error}") from None
        items.append(item)
        positions.append(number)
    return OrderFile(items, positions, "line")


def _line(line: str) -> Any:
    try:
        return loads(line)
    except json.JSONDecodeError as exc:
        return Unreadable(line, f"not valid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return Unreadable(line, "JSON nested too deep to be an order")


@dataclass(frozen=True)
class Refusal:
    """An order send did not send, and why: what --rejects writes and --json lists."""

    pass_number: int
    position: int
    position_kind: str
    order_id: Any
    errors: list[dict[str, Any]]  # [{"field": ..., "reason": ...}]
    item: Any  # as in the file, with the order_id it was given (or an Unreadable line): what --rejects writes

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.pass_number, "position": self.position, "position_kind": self.position_kind,
                "order_id": self.order_id, "errors": self.errors}


def write_rejects(path: Path, refusals: list[Refusal]) -> None:
    """The refused orders as NDJSON, as in the file plus their order_id (an unreadable line: its text as it
    was); replaced atomically."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as out:
            out.writelines((refusal.item.text if isinstance(refusal.item, Unreadable)
                            else dumps(refusal.item, compact=False)) + "\n" for refusal in refusals)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

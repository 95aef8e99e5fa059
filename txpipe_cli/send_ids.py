"""How `txpipe send` names an order without an order_id: by what the order is, not where it sits (issue 15).

The id is "send-<32 hex>-<pass>-<n>":

  <32 hex>  the start of the sha256 of the id scope and the order's canonical JSON: the order as the API's
            validator reads it (customer_id, qty, retail_price, type), keys sorted, no whitespace, the price
            written as the plain decimal it is worth (16.9, 16.90 and 1.69e1 are all "16.9"); the scope is
            the file's name without its extension unless `--id-scope` names one
  <pass>    the --repeat pass, 1 for a plain send
  <n>       which of the identical orders in the file this one is: 1 for the first with this content, 2 for
            the second, and so on in file order

So the ids do not depend on the file's bytes or layout: appending orders, editing, adding or removing other
orders, re-indenting, changing line endings, a BOM, key order, number spelling, moving orders around, or
converting between a JSON array and NDJSON re-ids none of the orders already sent, and a re-run stores only
what is new. Editing an order gives it a new id: it is a new order (the one sent before stays stored).
Identical orders are interchangeable, so numbering them in file order is enough: any n of them are stored
as n orders, whichever lines they sit on. The scope keeps two files apart: monday.json and tuesday.json may
each hold the same pizza for the same customer, and both are stored, while orders.json converted to
orders.ndjson keeps its ids. Renaming the file changes them; `--id-scope <the old name>` keeps them.

An order the validator refuses gets an id the same way from its JSON as read (keys sorted, a key given twice
kept twice), so `--rejects` writes the same ids on every run, and a fixed order sent from the rejects file
never takes the id of an order stored from another file.

`dumps` is the one JSON writer of `send`: prices exact (the file is read with Decimal, as the API reads a
body), and an object that repeats a key written with every pair, so the API refuses it as it was written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lambdas.core.orders import OrderIn

HASH_HEX = 32  # 128 bits; "send-" + 32 + two numbers stays within the API's 64 characters (see order_id)
MAX_FILE_DEPTH = 100  # JSON nesting a file may have; an order is 2 deep, and the API refuses past 8 anyway


def loads(text: str) -> Any:
    """JSON as the API parses a body (exact Decimals, a repeated key kept: lambdas.core.orders.loads), except
    that NaN and Infinity are read, for the check to refuse by position. RecursionError if nested too deep."""
    from lambdas.core.orders import json_depth, object_from_pairs  # lazily: pydantic's import is slow

    data = json.loads(text, parse_float=Decimal, object_pairs_hook=object_from_pairs)
    if json_depth(data) > MAX_FILE_DEPTH:
        raise RecursionError  # as json.loads does deeper still; keeps dumps() far from the recursion limit
    return data


def _pairs(obj: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    # A RepeatedKeys (lambdas.core.orders, not imported here: pydantic's import would slow every command)
    # holds every pair as written; any other dict, its items.
    return obj.pairs if type(obj) is not dict and hasattr(obj, "pairs") else obj.items()


def dumps(value: Any, *, sort_keys: bool = False, compact: bool = True) -> str:
    """JSON text of a value read from an orders file: a Decimal as the number it spells, an object repeating a
    key with all its pairs; anything JSON cannot hold raises TypeError. Nesting must be bounded (read_orders)."""
    item_sep, key_sep = (",", ":") if compact else (", ", ": ")

    def write(v: Any) -> str:
        kind = type(v)
        if kind is str:
            return encode_basestring_ascii(v)  # what json.dumps writes
        if kind is int:
            return int.__repr__(v)
        if kind is Decimal:
            return str(v)  # a parsed JSON number: digits, a point, an exponent; never NaN
        if isinstance(v, dict):
            pairs = sorted(_pairs(v), key=lambda pair: pair[0]) if sort_keys else _pairs(v)
            parts = []
            for key, x in pairs:  # an order's scalars inline, without a call each: send writes every order
                if type(key) is not str:
                    raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
                kind = type(x)
                text = (encode_basestring_ascii(x) if kind is str else int.__repr__(x) if kind is int
                        else str(x) if kind is Decimal else write(x))
                parts.append(encode_basestring_ascii(key) + key_sep + text)
            return "{" + item_sep.join(parts) + "}"
        if isinstance(v, list):
            return "[" + item_sep.join([write(x) for x in v]) + "]"
        return json.dumps(v)  # bool, None, float (NaN too: the validator refuses it), or TypeError

    return write(value)


CONTENT_FIELDS = ("customer_id", "qty", "retail_price", "type")  # an order's fields but order_id, sorted


def content(order: OrderIn) -> str:
    """The canonical JSON of a valid order without its id (CONTENT_FIELDS): what two orders must share to be
    the same order."""
    return (f'{{"customer_id":{order.customer_id},"qty":{order.qty},"retail_price":'
            f'{_plain(order.retail_price)},"type":{encode_basestring_ascii(order.type)}}}')


@lru_cache(maxsize=4096)
def _plain(price: Decimal) -> str:
    # The value, one spelling: 16.90 -> 16.9, 1E+2 -> 100 (16.9 and 16.90 are one cache key: equal Decimals).
    return format(price.normalize(), "f")


def order_id(digest: str, pass_number: int, occurrence: int) -> str:
    """The id of the `occurrence`-th order (1-based) with this content digest in pass `pass_number`.

    1..64 printable ASCII without spaces for any pass below 10^9 and occurrence below 10^15."""
    return f"send-{digest[:HASH_HEX]}-{pass_number}-{occurrence}"


def assign(items: list[Any], valid: list[OrderIn | None], pass_number: int, scope: str = "") -> list[str | None]:
    """The id each item gets in this pass: None for an item that is not an object or has an order_id of its own.

    `valid[i]` is the validated order of item i, or None if the validator refuses it; `scope` tells files apart
    (the file's name without its extension, or --id-scope)."""
    prefix = f"scope {scope}\n" if scope else ""
    seen: Counter[str] = Counter()
    ids: list[str | None] = []
    for item, order in zip(items, valid, strict=True):
        if not isinstance(item, dict) or item.get("order_id") is not None:
            ids.append(None)
            continue
        if order is not None:
            text = "order " + content(order)
        else:  # as read, with an "order_id": null dropped (null is no id, as for the API)
            pairs = [(k, v) for k, v in _pairs(item) if not (k == "order_id" and v is None)]
            text = "refused " + dumps(_Pairs(pairs), sort_keys=True)
        digest = hashlib.sha256((prefix + text).encode()).hexdigest()
        seen[digest] += 1
        ids.append(order_id(digest, pass_number, seen[digest]))
    return ids


class _Pairs(dict):  # type: ignore[type-arg]
    """Pairs to write as one object, repeated keys and all (dumps reads `pairs`)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.pairs = pairs


def with_id(data: bytes, item: dict[str, Any], stamped: dict[str, Any]) -> bytes:
    """dumps(stamped).encode(), from data = dumps(item).encode() when `item` had no "order_id" key: the id goes
    last, as dumps writes it (an order to post is a non-empty object), without writing the order again."""
    if "order_id" in item:  # "order_id": null, in its place
        return dumps(stamped).encode()
    return data[:-1] + b',"order_id":' + encode_basestring_ascii(stamped["order_id"]).encode() + b"}"


def stamp(item: Any, new_id: str) -> Any:
    """The item with `new_id` if it lacks an order_id (absent or null); anything else unchanged, never mutated.

    An object that repeats a key stays one (with every pair), so --rejects shows it as it was written."""
    if not isinstance(item, dict) or item.get("order_id") is not None:
        return item
    stamped = {**item, "order_id": new_id}
    if type(item) is dict:
        return stamped
    repeated = type(item)(stamped)
    repeated.pairs = [(k, v) for k, v in _pairs(item) if not (k == "order_id" and v is None)] + [("order_id", new_id)]
    return repeated

"""Order validation: the one definition of a valid order, shared by ingest and store.

Pure code: bytes in, validated orders or a list of per-item errors out. Money is
parsed as Decimal straight from the JSON text, so 16.99 never becomes 16.989999.

A refusal stays small and cheap whatever the body: parse_json bounds size, depth
and the number of JSON values before building anything big; validate_items refuses
an over-wide object with one error instead of pydantic's one per unknown key, keeps
at most MAX_ERRORS_KEPT errors (and counts the rest), and clips every reason and
field name, so no error echoes a huge input back.

Rules that hold at the door only, not for queued messages, which were accepted already: an
order object may not repeat a key (json.loads would keep the last value, so {"qty": 1, "qty": 100}
was stored as 100); a client's order_id may not start or end with a space (Redshift compares
VARCHAR ignoring trailing blanks: "x" and "x " would be one order), nor start with "hist-", which
`txpipe seed --history` gives its orders (the SLA report leaves those out by their id).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from lambdas.core.history import ORDER_ID_PREFIX as HISTORY_ORDER_ID_PREFIX  # seed --history's; no client's

PizzaType = Literal["cheese", "pepperoni", "supreme", "meat lover", "veggie"]
PIZZA_TYPES = get_args(PizzaType)
MAX_ORDERS_PER_REQUEST = 500
MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 8  # an order array is depth 2; anything far deeper is an attack, not an order
# Commas and opening brackets in the raw body (see parse_json). A valid request has under 40,000, even
# 500 orders whose order_ids are 64 commas each (3,000 without). 100,000 holds what json.loads of a
# 1 MiB body may build to ~13 MB (1 MiB of "0.1," would be ~37 MB of Decimals), and still lets a
# 90,000-key object through to the one-error wide-order check.
MAX_JSON_SEPARATORS = 100_000
MAX_ORDER_KEYS = 16  # an order has 5 fields; a far wider object is refused whole, without pydantic
MAX_ERRORS_KEPT = 100  # ItemErrors kept in a RequestRejected; the rest are only counted
MAX_REASON_CHARS = 200
MAX_FIELD_CHARS = 64  # an unknown key is named in its error, and a key can be 1 MiB long
MAX_ORDER_ID_CHARS = 64
# Printable ASCII: fits varchar(64) on Redshift byte for byte.
ORDER_ID_PATTERN = rf"^[\x20-\x7e]{{1,{MAX_ORDER_ID_CHARS}}}$"


def _strict_number(value: Any) -> Any:
    # JSON numbers arrive as int or Decimal (parse_float=Decimal); bool is an int in Python
    # and strings are not numbers, so both are refused here rather than coerced.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("must be a JSON number")
    number = Decimal(value)
    # Checked here on the exact value: pydantic's decimal_places check rounds 1e-1000030 to zero.
    if number.is_finite() and number and number.adjusted() < -2:
        raise ValueError("must have at most 2 decimal places")
    return number


def _posted_order_id(value: str) -> str:
    """A client's order_id: ORDER_ID_PATTERN with a reason a person can act on, and no space at either end."""
    if not 1 <= len(value) <= MAX_ORDER_ID_CHARS:
        raise ValueError(f"must be 1 to {MAX_ORDER_ID_CHARS} characters, not {len(value)}")
    if not (value.isascii() and value.isprintable()):  # for ASCII, isprintable() is exactly 0x20..0x7e
        at, char = next((i, c) for i, c in enumerate(value) if not " " <= c <= "~")
        kind = "a control character" if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F else "not ASCII"
        raise ValueError(f"must be printable ASCII: U+{ord(char):04X} at position {at + 1} is {kind}")
    if value[0] == " " or value[-1] == " ":
        raise ValueError("must not start or end with a space (the warehouse ignores trailing blanks, so "
                         "'x' and 'x ' would be one order)")
    if value.startswith(HISTORY_ORDER_ID_PREFIX):
        raise ValueError(f"must not start with {HISTORY_ORDER_ID_PREFIX!r}: txpipe seed --history's orders carry it")
    return value


# The field rules, once, for both an order as posted (OrderIn) and as queued (QueuedOrder).
CustomerId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Quantity = Annotated[int, Field(ge=1, le=100)]
OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN)]  # queued: as accepted, by this release or an earlier one
PostedOrderId = Annotated[str, AfterValidator(_posted_order_id)]  # posted: ORDER_ID_PATTERN, no edge spaces
ExactPrice = Annotated[Decimal, Field(gt=0, le=1000, decimal_places=2, allow_inf_nan=False)]
Price = Annotated[ExactPrice, BeforeValidator(_strict_number)]  # posted: a JSON number, never a string


class OrderIn(BaseModel):
    """An order as a client posts it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    customer_id: CustomerId
    type: PizzaType
    qty: Quantity
    retail_price: Price
    order_id: PostedOrderId | None = None


_REQUIRED = [name for name, field in OrderIn.model_fields.items() if field.is_required()]
_OPTIONAL = [name for name in OrderIn.model_fields if name not in _REQUIRED]
ORDER_FIELDS = (f"an order has {len(_REQUIRED)} required and {len(_OPTIONAL)} optional: "
                + ", ".join(_REQUIRED + _OPTIONAL))


@dataclass(frozen=True)
class Order:
    """A validated order with its identity and acceptance time; what travels on the queue."""

    order_id: str
    customer_id: int
    type: str
    qty: int
    retail_price: Decimal
    accepted_at: datetime

    def to_message(self) -> str:
        return json.dumps({"order_id": self.order_id, "customer_id": self.customer_id, "type": self.type,
                           "qty": self.qty, "retail_price": str(self.retail_price),
                           "accepted_at": self.accepted_at.isoformat()}, separators=(",", ":"))

    @classmethod
    def from_message(cls, body: str) -> Order:
        """Re-validates one queued order; raises ValueError on anything malformed (a poison message)."""
        return cls.from_dict(json.loads(body))

    @classmethod
    def from_dict(cls, data: Any) -> Order:
        if not isinstance(data, dict):
            raise ValueError("queued order is not a JSON object")
        data = dict(data)
        try:
            accepted_at = datetime.fromisoformat(data.pop("accepted_at"))
            raw_price = data.pop("retail_price")
            if not isinstance(raw_price, str):  # to_message writes the exact decimal text
                raise TypeError("retail_price must be a decimal string in a queued message")
            price = Decimal(raw_price)
            # The queued rules, not OrderIn's: an order an earlier release accepted (an order_id with a
            # trailing space, say) was answered 202 and must still be stored.
            order = QueuedOrder.model_validate({**data, "retail_price": price, "accepted_at": accepted_at})
        except (KeyError, TypeError, ArithmeticError, ValidationError) as exc:
            raise ValueError(f"invalid order message: {exc}") from exc
        return cls(order.order_id, order.customer_id, order.type, order.qty, order.retail_price, order.accepted_at)

    def content(self) -> tuple[int, str, int, Decimal]:
        """What must match for a re-sent order_id to count as the same order."""
        return (self.customer_id, self.type, self.qty, self.retail_price)


MAX_MESSAGE_BYTES = 200_000  # under SQS's 256 KiB message limit, with room to spare
PACKED_PREFIX = '{"orders":['


class QueuedOrder(BaseModel):
    """An order as pack_messages writes it: the same rules as OrderIn, plus its identity and time."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    order_id: OrderId
    customer_id: CustomerId
    type: PizzaType
    qty: Quantity
    retail_price: ExactPrice  # the exact decimal text to_message writes
    accepted_at: AwareDatetime


class PackedMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    orders: list[QueuedOrder] = Field(min_length=1)


def pack_messages(orders: list[Order], max_bytes: int = MAX_MESSAGE_BYTES) -> list[str]:
    """A request's orders in as few queue messages as fit, each {"orders": [...]} under max_bytes.

    One message per order cost a queue write, receive and delete per order (and an SQS request
    each); packed, a 500-order request is one message. Orders are ASCII, so characters are bytes.
    """
    messages: list[str] = []
    current: list[str] = []
    envelope = len(PACKED_PREFIX) + len("]}")
    size = 0
    for order in orders:
        item = order.to_message()
        if current and size + len(item) + 1 > max_bytes - envelope:
            messages.append(PACKED_PREFIX + ",".join(current) + "]}")
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        messages.append(PACKED_PREFIX + ",".join(current) + "]}")
    return messages


def unpack_message(body: str) -> list[Order]:
    """The orders in one queued message: a packed {"orders": [...]}, or a single order (the format
    of earlier releases, which may still sit in a queue during an upgrade). Raises ValueError."""
    if body.startswith(PACKED_PREFIX):
        # The store's hot path: the whole message parsed and validated in one call into pydantic-core
        # (2.6 us an order instead of 5.8 for json.loads plus a model per order).
        try:
            packed = PackedMessage.model_validate_json(body)
        except ValidationError as exc:
            raise ValueError(f"invalid packed message: {exc}") from None
        return [Order(q.order_id, q.customer_id, q.type, q.qty, q.retail_price, q.accepted_at) for q in packed.orders]
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"message body is not JSON: {exc}") from None
    if isinstance(data, dict) and "orders" in data:
        items = data["orders"]
        if not isinstance(items, list) or not items:
            raise ValueError("message holds no orders")
        return [Order.from_dict(item) for item in items]
    return [Order.from_dict(data)]


@dataclass(frozen=True)
class ItemError:
    index: int | None
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class RequestRejected(Exception):
    """The whole request is refused; `errors` says why, item by item (at most MAX_ERRORS_KEPT of them),
    and `error_count` how many errors there were in all (exact, at least len(errors))."""

    def __init__(self, errors: list[ItemError], status: int = 400, error_count: int | None = None) -> None:
        super().__init__("; ".join(e.reason for e in errors))
        self.errors = errors
        self.status = status
        self.error_count = len(errors) if error_count is None else error_count


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class RepeatedKeys(dict):  # type: ignore[type-arg]
    """A JSON object that gave some key more than once: the last value of each key (as json.loads keeps),
    plus every (key, value) pair as written, so a writer can reproduce the object and say which key."""

    __slots__ = ("pairs",)  # no __dict__ per object: a hostile body may hold tens of thousands
    pairs: list[tuple[str, Any]]

    @property
    def repeated(self) -> list[str]:
        """Each key given more than once, in the order of its second appearance."""
        seen: set[str] = set()
        repeated: dict[str, None] = {}  # an ordered set
        for key, _ in self.pairs:
            if key in seen:
                repeated[key] = None
            seen.add(key)
        return list(repeated)


def object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a plain dict, or a RepeatedKeys when a key came twice (refused at the door)."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = RepeatedKeys(obj)
    marked.pairs = pairs
    return marked


def loads(text: str) -> Any:
    """json.loads as the API reads a body: floats as exact Decimals, repeated keys marked (RepeatedKeys)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants, object_pairs_hook=object_from_pairs)


def json_depth(value: Any) -> int:
    """Nesting depth (a scalar counts as a level), computed level by level so a hostile body can neither
    blow the stack nor cost more than a list of references to one level's values."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for node in level if isinstance(node, dict | list)
                 for child in (node.values() if isinstance(node, dict) else node)]
    return depth


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, bounded size, depth and number of values.

    Raises RequestRejected.
    """
    if len(body) > MAX_BODY_BYTES:
        raise RequestRejected([ItemError(None, None, f"body exceeds {MAX_BODY_BYTES} bytes")], status=413)
    # Every JSON value but the outermost follows a comma or an opening bracket (and every key a comma or
    # a brace), so counting them on the bytes bounds what json.loads would build: 1 MiB of "[0.1,0.1,..."
    # is 350,000 Decimals. Those characters inside strings count too; a valid request never comes near.
    separators = body.count(b",") + body.count(b"[") + body.count(b"{")
    if separators > MAX_JSON_SEPARATORS:
        raise RequestRejected([ItemError(None, None, f"body holds too many JSON values (over {MAX_JSON_SEPARATORS} "
                                                     f"commas and brackets); a request is at most "
                                                     f"{MAX_ORDERS_PER_REQUEST} orders")])
    try:
        data = loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestRejected([ItemError(None, None, f"body is not valid UTF-8: {exc.reason}")]) from None
    except RecursionError:
        raise RequestRejected([ItemError(None, None, "JSON nesting is too deep")]) from None
    except (ValueError, ArithmeticError) as exc:  # JSONDecodeError, huge ints/exponents, NaN/Infinity
        raise RequestRejected([ItemError(None, None, _clip(f"malformed JSON: {exc}", MAX_REASON_CHARS))]) from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise RequestRejected([ItemError(None, None, "JSON nesting is too deep")])
    return data


def _field_name(loc: tuple[Any, ...]) -> str | None:
    return _clip(".".join(str(part) for part in loc), MAX_FIELD_CHARS) if loc else None


def _check_item(index: int, item: Any, seen_ids: dict[str, int]
                ) -> OrderIn | ItemError | list[ItemError] | ValidationError:
    """The valid order, or what is wrong with it: ItemErrors, or pydantic's errors (not yet listed)."""
    if not isinstance(item, dict):
        return ItemError(index, None, "order must be a JSON object")
    if len(item) > MAX_ORDER_KEYS:
        # One error, not pydantic's one per unknown key: 90,000 keys made a 6.9 MB refusal.
        return ItemError(index, None, f"order has {len(item)} fields; {ORDER_FIELDS}")
    if isinstance(item, RepeatedKeys):
        # Refused, not last-one-wins: the client meant one of the values, and a log or proxy reading the
        # same body may well have taken the other.
        return [ItemError(index, _clip(key, MAX_FIELD_CHARS),
                          f"key {_clip(key, MAX_FIELD_CHARS)!r} appears more than once in the order; give each "
                          f"field once") for key in item.repeated]
    try:
        order = OrderIn.model_validate(item)
    except ValidationError as exc:
        return exc
    if order.order_id is not None:
        if order.order_id in seen_ids:
            return ItemError(index, "order_id",
                             f"duplicate order_id in request (also at index {seen_ids[order.order_id]})")
        seen_ids[order.order_id] = index
    return order


def validate_items(data: Any) -> list[OrderIn]:
    """One order object or an array of 1..500; all valid, or RequestRejected with the problems.

    Every item is checked, so RequestRejected.error_count is exact (no "at least"): an object wider
    than MAX_ORDER_KEYS counts as one error, and an item pydantic refuses counts pydantic's
    error_count(), which lists nothing. Only the first MAX_ERRORS_KEPT errors (by item) are listed,
    with reasons and field names clipped. Checking on after that stays cheap: at most 500 items of
    at most MAX_ORDER_KEYS keys each reach pydantic.
    """
    items = data if isinstance(data, list) else [data]
    if isinstance(data, list) and not data:
        raise RequestRejected([ItemError(None, None, "empty array: send at least one order")])
    if len(items) > MAX_ORDERS_PER_REQUEST:
        raise RequestRejected(
            [ItemError(None, None, f"{len(items)} orders in one request; the limit is {MAX_ORDERS_PER_REQUEST}")]
        )
    errors: list[ItemError] = []
    error_count = 0
    orders: list[OrderIn] = []
    seen_ids: dict[str, int] = {}
    for index, item in enumerate(items):
        checked = _check_item(index, item, seen_ids)
        if isinstance(checked, OrderIn):
            orders.append(checked)
        elif isinstance(checked, ItemError | list):
            listed = checked if isinstance(checked, list) else [checked]
            error_count += len(listed)
            if len(errors) < MAX_ERRORS_KEPT:
                errors.extend(listed)
        else:
            error_count += checked.error_count()
            if len(errors) < MAX_ERRORS_KEPT:
                errors.extend(
                    ItemError(index, _field_name(e["loc"]), _clip(e["msg"], MAX_REASON_CHARS))
                    for e in checked.errors(include_url=False, include_context=False, include_input=False)
                )
    if errors:
        raise RequestRejected(errors[:MAX_ERRORS_KEPT], error_count=error_count)
    return orders


def accept(orders: list[OrderIn], now: datetime | None = None) -> list[Order]:
    """Stamps identity and acceptance time: the client's idempotency key, or a fresh UUID."""
    accepted_at = now or datetime.now(UTC)
    return [
        Order(o.order_id or str(uuid.uuid4()), o.customer_id, o.type, o.qty, o.retail_price, accepted_at)
        for o in orders
    ]

"""The ops function's actions and what each answers: one contract for ops, the CLI and the dashboard.

Each action's result is a dataclass here (ACTIONS names them). The ops function (lambdas/ops.py) builds one and
answers `result.to_dict()`; the CLI and the dashboard read the answer back with `from_dict`, through
txpipe_cli/ops_client.py. The wire format is JSON exactly as earlier releases sent it, key order included, so a
deployment of the previous release still answers this CLI and `--json` prints what the function said:

- a field without a default must be in the answer (ContractError otherwise);
- a field with a default may be missing (an earlier release's function did not send it) and is always sent;
- an `optional` field is sent only when it is not None: the function leaves it out where it does not apply, or
  an earlier release did not send it;
- a `flattened` part's keys sit in its parent's object, all there or none (a store `status` could not read);
- a key this release does not know (a later release's) is kept in `extra` and given back, last, by to_dict.

Only the shape is checked (keys and nesting); values are taken as sent. Adding a report column is a field of
StateReport, `optional` (an earlier release's function does not send it), and its renderers: JSON and CSV
follow the type; the tables (txpipe_cli/commands/report.py) and the page (dashboard.js) show what they choose.

Standard library only: the Lambda package and the CLI's start-up import it.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Self


class ContractError(Exception):
    """An answer not in the shape of its action's result: a function of another release, or a bug."""


def part(kind: type[Result], *, many: bool = False, **options: Any) -> Any:
    """A field holding another result (`many`: a list of them)."""
    return field(metadata={"kind": kind, "many": many}, **options)


def optional(kind: type[Result] | None = None) -> Any:
    """A field sent only when it is not None (None: not in the answer)."""
    return field(default=None, metadata={"kind": kind, "optional": True})


def flattened(kind: type[Result], marker: str) -> Any:
    """A part whose keys sit in its parent's object; there when its key `marker` is (None otherwise)."""
    return field(default=None, metadata={"kind": kind, "flatten": marker})


def _fields(cls: type[Result]) -> list[Field[Any]]:
    return [f for f in fields(cls) if f.name != "extra"]


@dataclass(kw_only=True)
class Result:
    """The base of every result: to_dict/from_dict over the dataclass's fields, in their order."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys of the answer, in order (a flattened part's own keys in its place)."""
        return tuple(key for f in _fields(cls)
                     for key in (f.metadata["kind"].keys() if f.metadata.get("flatten") else (f.name,)))

    @classmethod
    def scalar_keys(cls) -> tuple[str, ...]:
        """The keys that hold a value, not another result: a report's columns."""
        return tuple(f.name for f in _fields(cls) if not f.metadata.get("kind"))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in _fields(type(self)):
            value = getattr(self, f.name)
            if f.metadata.get("flatten"):
                data.update(value.to_dict() if value is not None else {})
            elif value is not None or not f.metadata.get("optional"):
                data[f.name] = _dump(value)
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise ContractError(f"{cls.__name__} is a JSON object, not {type(data).__name__}")
        values: dict[str, Any] = {}
        known: set[str] = set()
        for f in _fields(cls):
            kind, marker = f.metadata.get("kind"), f.metadata.get("flatten")
            if marker:
                if marker in data:
                    values[f.name] = kind.from_dict({key: data[key] for key in kind.keys() if key in data})
                    known.update(kind.keys())
                continue
            known.add(f.name)
            if f.name in data:
                values[f.name] = _load(cls, f, data[f.name])
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ContractError(f"{cls.__name__} has no {f.name!r}")
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})


def _load(owner: type[Result], f: Field[Any], value: Any) -> Any:
    kind = f.metadata.get("kind")
    if kind is None or value is None:
        return value
    if not f.metadata.get("many"):
        return kind.from_dict(value)
    if not isinstance(value, list):
        raise ContractError(f"{owner.__name__}.{f.name} is a list, not {type(value).__name__}")
    return [kind.from_dict(item) for item in value]


def _dump(value: Any) -> Any:
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value


# --------------------------------------------------------------------------- the queue and the stores

@dataclass(kw_only=True)
class QueueDepth(Result):
    """queue_depth (and status's "queue"): the orders queue's messages waiting and being handled, the DLQ's."""

    visible: int
    in_flight: int
    dead_letters: int

    @property
    def waiting(self) -> int:
        """Messages not yet stored: visible or being handled."""
        return int(self.visible) + int(self.in_flight)


@dataclass(kw_only=True)
class LastSync(Result):
    """The warehouse's last recorded sync run (on Redshift, the last that moved orders)."""

    finished_at: str
    synced: int
    pending: int


@dataclass(kw_only=True)
class OltpStatus(Result):
    """What status reads of the OLTP database; counts of tables past a million rows are the planner's
    estimates, and `estimated` names them."""

    orders: int | None = None
    customers: int | None = None
    estimated: list[str] | None = optional()
    outbox_backlog: int | None = None
    oldest_pending_at: str | None = None
    rejected_orders: int | None = None  # the pending ones (lambdas.core.rejections)

    def about(self, name: str) -> str | int | None:
        """A count, marked as the statistics' estimate where it is one."""
        value = getattr(self, name)
        return f"~{value:,} (estimate)" if value is not None and name in (self.estimated or ()) else value


@dataclass(kw_only=True)
class WarehouseStatus(Result):
    last_sync: LastSync | None = part(LastSync, default=None)  # None: no sync recorded yet


@dataclass(kw_only=True)
class Status(Result):
    """status: what each store holds. A store that could not be read is None here, and `errors` says why."""

    errors: dict[str, str] = field(default_factory=dict)
    oltp: OltpStatus | None = flattened(OltpStatus, "outbox_backlog")
    warehouse: WarehouseStatus | None = flattened(WarehouseStatus, "last_sync")
    queue: QueueDepth | None = optional(QueueDepth)

    @property
    def last_sync(self) -> LastSync | None:
        return self.warehouse.last_sync if self.warehouse else None


# --------------------------------------------------------------------------- the analysts' report

@dataclass(kw_only=True)
class Freshness(Result):
    """freshness (and report's "freshness"): when the views were refreshed, the orders not in them yet."""

    views_refreshed_at: str | None  # None: not refreshed since they were created
    awaiting_refresh: int  # in the warehouse, beyond the views' snapshot
    last_sync_at: str | None = None
    awaiting_sync: int | None  # stored in OLTP, not yet synced; None: OLTP not reached
    awaiting_sync_error: str | None = optional()  # why OLTP was not reached


@dataclass(kw_only=True)
class TopPizza(Result):
    pizza_type: str
    total_pizzas: int
    gross_sales: float


@dataclass(kw_only=True)
class StateReport(Result):
    """One state's row: its totals, its rank among the 51 by gross sales, and its top 3 pizza types."""

    state: str
    state_name: str
    population: int
    total_pizzas: int
    gross_sales: float
    gross_sales_per_capita: str | float  # dollars per person, the exact decimal (an earlier release: a float)
    unique_customers: int
    rank: int
    top_pizzas: list[TopPizza] = part(TopPizza, many=True)


# How each state's top pizza types are ordered: said beside every report (its JSON's "ranking", the tables' foot).
RANKING = "top pizza types rank by pizzas sold, then gross sales, then name"


@dataclass(kw_only=True)
class Report(Result):
    """report: the states asked for ({"states": [codes]}, each once) or all 51 ({"all": true}) by rank, and
    how fresh the views are unless {"freshness": false} (the dashboard reads that apart)."""

    freshness: Freshness | None = optional(Freshness)
    states: list[StateReport] = part(StateReport, many=True)


@dataclass(kw_only=True)
class Lags(Result):
    """Lag percentiles in seconds (None: nothing synced in the window)."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass(kw_only=True)
class SlaHistory(Result):
    """The orders of `seed --history` in the window: how many, how many pending, whether they were counted."""

    orders: int
    pending: int
    counted: bool


@dataclass(kw_only=True)
class SlaReport(Result):
    """sla_report: lag from API accept to warehouse load, over the orders accepted in the window."""

    sla_seconds: float
    oltp_orders: int
    warehouse_orders: int
    synced: int
    pending: int
    oldest_pending_seconds: float
    lag_seconds: Lags = part(Lags)
    breaches: int
    last_sync_at: str | None
    history: SlaHistory | None = optional(SlaHistory)


# --------------------------------------------------------------------------- dead letters and rejected orders

@dataclass(kw_only=True)
class DeadLetter(Result):
    """A dead letter as dlq_list lists it; dlq_show adds its whole body."""

    message_id: str
    reason: str
    sent_at: str
    age_seconds: float
    dead_lettered_at: str | None = None  # None where the queue does not say (SQS's own redrive)
    receive_count: int
    bytes: int
    body: str | None = optional()


@dataclass(kw_only=True)
class DeadLetters(Result):
    """dlq_list: how many wait (SQS: approximately), how many are listed, per reason, and the oldest first."""

    count: int
    listed: int
    reasons: dict[str, int]
    messages: list[DeadLetter] = part(DeadLetter, many=True)


@dataclass(kw_only=True)
class Redrive(Result):
    """dlq_redrive: COMPLETED (moved), or RUNNING (SQS: a message move task, about `moved` messages)."""

    moved: int
    status: str
    task_handle: str | None = optional()


@dataclass(kw_only=True)
class Purged(Result):
    """dlq_purge and rejected_purge: how many were deleted."""

    purged: int


@dataclass(kw_only=True)
class RejectedOrder(Result):
    id: int
    order_id: str | None
    reason: str
    rejected_at: str
    order: dict[str, Any]  # as it was queued (retail_price a number), or {"payload": text} if not an object
    resolved: bool | None = optional()  # stored under its order_id since
    stored_at: str | None = None


@dataclass(kw_only=True)
class Rejected(Result):
    """rejected: the pending ones' counts (per kind of reason), how many are resolved, and a page of rows."""

    count: int
    resolved: int | None = optional()
    oldest_at: str | None = None
    newest_at: str | None = None
    reasons: dict[str, int]
    rows: list[RejectedOrder] = part(RejectedOrder, many=True)


# --------------------------------------------------------------------------- loads and migrations

@dataclass(kw_only=True)
class RowsAdded(Result):
    staged: int


@dataclass(kw_only=True)
class CustomersCommitted(Result):
    """customers_commit: the load applied; `moved`, customers now in another state (with replace)."""

    loaded: int
    new: int
    updated: int
    moved: int | None = optional()


@dataclass(kw_only=True)
class Aborted(Result):
    aborted: bool


@dataclass(kw_only=True)
class HistoryLoaded(Result):
    inserted: int
    already_present: int


@dataclass(kw_only=True)
class Migrated(Result):
    """migrate: the versions applied now per database (empty: up to date), the population rows loaded."""

    applied: dict[str, list[int]]
    state_population_rows: int


# Every action and the result it answers. A caller's mistake is answered {"error": reason} instead.
ACTIONS: dict[str, type[Result]] = {
    # "customers_stage": the action's name since the first release (a deployed function answers to it), adding rows.
    "migrate": Migrated, "customers_stage": RowsAdded, "customers_commit": CustomersCommitted,
    "customers_abort": Aborted,
    "history_load": HistoryLoaded, "report": Report, "freshness": Freshness, "sla_report": SlaReport,
    "status": Status, "queue_depth": QueueDepth, "dlq_list": DeadLetters, "dlq_show": DeadLetter,
    "dlq_redrive": Redrive, "dlq_purge": Purged, "rejected": Rejected, "rejected_purge": Purged,
}

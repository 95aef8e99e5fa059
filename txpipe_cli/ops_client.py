"""The CLI's and the dashboard's one way to the ops function: a method per action, each returning its typed
result (lambdas/core/contract.py), over any target's `invoke` (local runtime or Lambda alike).

Commands never build an ops event or dig in an answer by key: they call a method here and read attributes.
An answer not in its action's shape (a function of another release missing a field this one needs) is one
TxpipeError line saying so, with the deploy that brings the function to this release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from lambdas.core import contract
from txpipe_cli.errors import TxpipeError

R = TypeVar("R", bound=contract.Result)


class Invoker(Protocol):
    """What the client needs of a target (txpipe_cli.targets.Target): its functions, invoked once."""

    def invoke(self, function: str, payload: dict[str, Any], timeout: float = ...) -> Any: ...


class OpsClient:
    """The ops function of `target`; `timeout`: seconds each call waits at most (None: the target's default)."""

    def __init__(self, target: Invoker, timeout: float | None = None) -> None:
        self.target, self.timeout = target, timeout

    def _call(self, kind: type[R], action: str, **arguments: Any) -> R:
        payload = {"action": action, **arguments}
        answer = (self.target.invoke("ops", payload) if self.timeout is None
                  else self.target.invoke("ops", payload, timeout=self.timeout))
        try:
            return kind.from_dict(answer)
        except contract.ContractError as exc:
            raise TxpipeError(f"the ops function answered {action} in a shape this txpipe does not read: {exc}",
                              hint="deploy this release (txpipe deploy, with your --target and --stage), "
                                   "then run the command again") from None

    # ------------------------------------------------------------------ the stores

    def migrate(self) -> contract.Migrated:
        return self._call(contract.Migrated, "migrate")

    def status(self) -> contract.Status:
        return self._call(contract.Status, "status")

    def queue_depth(self) -> contract.QueueDepth:
        return self._call(contract.QueueDepth, "queue_depth")

    # ------------------------------------------------------------------ reports

    def report(self, *, states: Sequence[str] = (), all: bool = False,
               freshness: bool = True) -> contract.Report:
        """The states (USPS codes) asked for, or all 51 by rank; with how fresh the views are unless not asked."""
        chosen: dict[str, Any] = {"all": True} if all else {"states": list(states)}
        result = self._call(contract.Report, "report", **chosen, **({} if freshness else {"freshness": False}))
        if freshness and result.freshness is None:
            raise TxpipeError("the ops function answered report without its freshness",
                              hint="deploy this release (txpipe deploy, with your --target and --stage)")
        return result

    def freshness(self) -> contract.Freshness:
        return self._call(contract.Freshness, "freshness")

    def sla_report(self, *, sla_seconds: float, since_seconds: float | None,
                   include_history: bool) -> contract.SlaReport:
        return self._call(contract.SlaReport, "sla_report", sla_seconds=sla_seconds, since_seconds=since_seconds,
                          include_history=include_history)

    # ------------------------------------------------------------------ dead letters and rejected orders

    def dlq_list(self, limit: int) -> contract.DeadLetters:
        return self._call(contract.DeadLetters, "dlq_list", limit=limit)

    def dlq_show(self, message_id: str) -> contract.DeadLetter:
        return self._call(contract.DeadLetter, "dlq_show", message_id=message_id)

    def dlq_redrive(self) -> contract.Redrive:
        return self._call(contract.Redrive, "dlq_redrive")

    def dlq_purge(self) -> contract.Purged:
        return self._call(contract.Purged, "dlq_purge")

    def rejected(self, *, limit: int, reason: str | None = None, all: bool = False,
                 after_id: int = 0) -> contract.Rejected:
        """The pending rejected orders' counts and a page of them after `after_id`; `all`: the resolved too."""
        return self._call(contract.Rejected, "rejected", after_id=after_id, limit=limit, reason=reason, all=all)

    def rejected_purge(self) -> contract.Purged:
        """Deletes the resolved rejected orders (nothing else can be purged)."""
        return self._call(contract.Purged, "rejected_purge", resolved=True)

    # ------------------------------------------------------------------ loads

    def customers_stage(self, load_id: str, rows: list[list[Any]], *, first: bool) -> contract.RowsAdded:
        """Adds rows to the customers load `load_id` (the action's name since the first release: a deployed
        function answers to it)."""
        return self._call(contract.RowsAdded, "customers_stage", load_id=load_id, rows=rows, first=first)

    def customers_commit(self, load_id: str, *, replace: bool) -> contract.CustomersCommitted:
        return self._call(contract.CustomersCommitted, "customers_commit", load_id=load_id, replace=replace)

    def customers_abort(self, load_id: str) -> contract.Aborted:
        return self._call(contract.Aborted, "customers_abort", load_id=load_id)

    def history_load(self, *, seed: int, start: int, count: int, total: int, days: int,
                     end: str) -> contract.HistoryLoaded:
        """One chunk of `seed --history`: orders [start, start+count) of the load (seed, total, days, end)."""
        return self._call(contract.HistoryLoaded, "history_load", seed=seed, total=total, days=days, end=end,
                          start=start, count=count)

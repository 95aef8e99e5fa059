"""The five functions, written once: name, handler, timeout, memory, whether they sit in the VPC,
and which databases each one reaches (each as its own database user, with only its grants).

The local runtime runs them from here; infra/template.yaml declares the same on AWS.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # module.function, as Lambda's Handler setting
    timeout_seconds: int
    memory_mb: int
    in_vpc: bool
    databases: tuple[str, ...]  # of oltp, warehouse, queue (the local queue is a database)
    description: str

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        module, _, attribute = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), attribute)

    @property
    def db_user(self) -> str:
        return f"txpipe_{self.name}"


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("ingest", "lambdas.ingest.handler", 10, 512, False, ("queue",),
             "POST /orders -> validated orders on the queue"),
    Function("store", "lambdas.store.handler", 60, 512, True, ("oltp", "queue"),
             "SQS orders -> RDS orders + outbox, partial batch failures"),
    Function("sync", "lambdas.sync.handler", 300, 1024, True, ("oltp", "warehouse"),
             "outbox -> Redshift orders_fact, publishes the oldest pending age"),
    Function("refresh", "lambdas.refresh.handler", 300, 256, True, ("warehouse",),
             "REFRESH MATERIALIZED VIEW for the reporting views"),
    Function("ops", "lambdas.ops.handler", 300, 512, True, ("oltp", "warehouse", "queue"),
             "migrations and read-only reports on the private databases"),
)}

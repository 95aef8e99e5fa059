"""What a function needs from its environment: connections and the queue.

Resolved lazily, cached per thread, and dropped after an error so that the next
invocation starts from a clean connection rather than an aborted transaction.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from lambdas.core.db import Endpoint, cached_connection, connect_postgres, drop_cached
from lambdas.core.queue import Queue, queue_from_env

_queue: Queue | None = None


def oltp() -> Any:
    return cached_connection(
        "oltp", lambda: connect_postgres(Endpoint.from_env("oltp"), application_name="txpipe-oltp")
    )


def warehouse() -> Any:
    kind = os.environ.get("TXPIPE_WAREHOUSE_KIND", "postgres")
    if kind != "postgres":
        raise RuntimeError(f"warehouse kind {kind!r} is not supported by this build")
    return cached_connection(
        "warehouse", lambda: connect_postgres(Endpoint.from_env("warehouse"), application_name="txpipe-warehouse")
    )


def reset_oltp() -> None:
    drop_cached("oltp")


def queue() -> Queue:
    global _queue
    if _queue is None:
        _queue = queue_from_env()
    return _queue


def setting(name: str, default: float) -> float:
    return float(os.environ.get(f"TXPIPE_{name}", default))


def fresh_connections_on_error(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Drops this thread's cached connections when a handler raises. A connection-level error
    (the server restarted, an idle connection was cut) is retried once on fresh connections:
    every handler wrapped here is idempotent, so running it again is safe."""
    import psycopg2

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            try:
                return handler(*args, **kwargs)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                _drop_all()
                if attempt == 2:
                    raise
            except Exception:
                _drop_all()
                raise
        raise AssertionError("unreachable")

    return wrapper


def _drop_all() -> None:
    drop_cached("oltp")
    drop_cached("warehouse")

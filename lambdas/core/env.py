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
from lambdas.core.sync import load_stage_postgres
from lambdas.core.warehouse import connect_redshift, is_connection_error, load_stage_redshift

WAREHOUSE_KINDS = ("postgres", "redshift")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_queue: Queue | None = None


def oltp() -> Any:
    return cached_connection(
        "oltp", lambda: connect_postgres(Endpoint.from_env("oltp"), application_name="txpipe-oltp")
    )


def warehouse_kind() -> str:
    """TXPIPE_WAREHOUSE_KIND: postgres (the local stand-in, psycopg2) or redshift (redshift-connector)."""
    kind = os.environ.get("TXPIPE_WAREHOUSE_KIND", "postgres")
    if kind not in WAREHOUSE_KINDS:
        raise RuntimeError(f"warehouse kind {kind!r} is not supported: use one of {', '.join(WAREHOUSE_KINDS)}")
    return kind


def warehouse() -> Any:
    if warehouse_kind() == "redshift":
        return cached_connection("warehouse", _connect_redshift_from_env)
    return cached_connection(
        "warehouse", lambda: connect_postgres(Endpoint.from_env("warehouse"), application_name="txpipe-warehouse")
    )


def warehouse_loader() -> Callable[[Any, list[tuple[Any, ...]]], None]:
    """The bulk loader of the sync staging table for this warehouse kind (COPY is PostgreSQL-only)."""
    return load_stage_redshift if warehouse_kind() == "redshift" else load_stage_postgres


def _connect_redshift_from_env() -> Any:
    endpoint = Endpoint.from_env("warehouse")
    value = os.environ.get("TXPIPE_WAREHOUSE_SSL", "true").strip().lower()
    if value not in ("true", "false"):
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL must be true or false")
    ssl = value == "true"
    # Plain text exists for the loopback test shim only: credentials never cross a network without TLS.
    if not ssl and endpoint.host not in LOOPBACK_HOSTS:
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL=false is allowed only for a loopback warehouse host (the test shim)")
    return connect_redshift(endpoint, ssl=ssl, application_name="txpipe-warehouse")


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
    every handler wrapped here is idempotent, so running it again is safe. That holds for
    psycopg2 and for redshift-connector (see warehouse.is_connection_error)."""
    import psycopg2

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            try:
                return handler(*args, **kwargs)
            except Exception as exc:
                _drop_all()
                connection_lost = isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) \
                    or is_connection_error(exc)
                if attempt == 2 or not connection_lost:
                    raise
        raise AssertionError("unreachable")

    return wrapper


def drop_connections() -> None:
    """Forgets this thread's database connections (after an error that may have broken one)."""
    _drop_all()
    if _queue is not None and hasattr(_queue, "close"):
        _queue.close()


def _drop_all() -> None:
    drop_cached("oltp")
    drop_cached("warehouse")

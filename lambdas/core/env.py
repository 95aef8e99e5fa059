"""What a function needs from its environment: connections, the warehouse backend and the queue.

Resolved lazily, cached per thread, and dropped after an error so that the next
invocation starts from a clean connection rather than an aborted transaction.

The environment is the process's on Lambda. The local runtime runs every function in
one process, so it hands each invocation its own function's variables through
`function_environment` (a context variable): each function then connects as its own
database user, as on AWS. Connections are cached per thread and per endpoint (the warehouse's:
per its settings, its endpoint among them), so a thread that runs two functions never lends
one's connection to the other.

The warehouse is the `Warehouse` class registered for TXPIPE_WAREHOUSE_KIND (lambdas.core.warehouse:
postgres by default, redshift on AWS), built by its own `from_env`: this module names no kind.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from lambdas.core.db import Endpoint, cached_connection, connect_postgres, drop_cached
from lambdas.core.queue import Queue, queue_from_env
from lambdas.core.warehouse import DEFAULT_KIND, Warehouse, is_connection_error, warehouse_class

_queues: dict[tuple[str, ...], Queue] = {}
# One backend per configuration (its kind and the values of the variables it reads), so that a warm function
# reuses what it holds across invocations (Redshift's S3 client).
_backends: dict[tuple[str, ...], Warehouse] = {}
_function_env: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "txpipe_function_env", default=None)


def environ() -> dict[str, str]:
    """This invocation's environment: the function's own under the local runtime, else the process's."""
    return dict(_function_env.get() or os.environ)


@contextlib.contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Runs the block with `variables` as the function's environment (the local runtime's invoke)."""
    token = _function_env.set(variables)
    try:
        yield
    finally:
        _function_env.reset(token)


def _endpoint(name: str) -> Endpoint:
    return Endpoint.from_env(name, environ())


def oltp() -> Any:
    endpoint = _endpoint("oltp")
    return cached_connection(("oltp", endpoint),
                             lambda: connect_postgres(endpoint, application_name="txpipe-oltp"))


def _warehouse() -> tuple[tuple[str, ...], Warehouse]:
    """This environment's warehouse configuration (its kind and the values of its settings) and its backend."""
    variables = environ()
    kind = variables.get("TXPIPE_WAREHOUSE_KIND", DEFAULT_KIND)
    cls = warehouse_class(kind)
    key = (kind, *(variables.get(name, "") for name in cls.settings))
    if key not in _backends:
        _backends[key] = cls.from_env(variables)
    return key, _backends[key]


def warehouse_backend() -> Warehouse:
    """The warehouse behind its interface for TXPIPE_WAREHOUSE_KIND, built by its class's from_env (which
    refuses an unknown kind, a missing or an unsafe setting) and reused while the settings stay the same."""
    return _warehouse()[1]


def warehouse() -> Any:
    """This thread's connection to the warehouse (cached; dropped after an error). The settings are checked
    first, every time: a bad one is refused before any connection is made or reused."""
    key, backend = _warehouse()
    return cached_connection(("warehouse", key), backend.connect)


def reset_backends() -> None:
    """Forgets every warehouse backend (tests hand the functions new S3 clients and stages)."""
    _backends.clear()


def reset_oltp() -> None:
    drop_cached("oltp")


def queue() -> Queue:
    """The function's queue, built once per queue URL and identity (thread-safe enough: a race builds
    two equal objects, and PgQueue keeps its connections per thread)."""
    variables = environ()
    key = tuple(variables.get(k, "") for k in ("TXPIPE_QUEUE_URL", "TXPIPE_DLQ_URL", "TXPIPE_QUEUE_HOST",
                                                "TXPIPE_QUEUE_PORT", "TXPIPE_QUEUE_DB", "TXPIPE_QUEUE_SECRET"))
    if key not in _queues:
        _queues[key] = queue_from_env(variables)
    return _queues[key]


def reset_queues() -> None:
    """Forgets every queue object (tests point the functions at new queues)."""
    for built in list(_queues.values()):
        if hasattr(built, "close"):
            built.close()
    _queues.clear()


def setting(name: str, default: float) -> float:
    return float(environ().get(f"TXPIPE_{name}", default))


def fresh_connections_on_error(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Drops this thread's cached connections when a handler raises. A connection-level error
    (the server restarted, an idle connection was cut) is retried once on fresh connections:
    every handler wrapped here is idempotent, so running it again is safe. The OLTP database's
    psycopg2 errors are told here; the warehouse's by its class (Warehouse.is_connection_error)."""
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
    for built in list(_queues.values()):
        if hasattr(built, "close"):
            built.close()  # PgQueue: this thread's connection only


def _drop_all() -> None:
    drop_cached("oltp")
    drop_cached("warehouse")

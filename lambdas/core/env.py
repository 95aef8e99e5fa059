"""What a function needs from its environment: connections and the queue.

Resolved lazily, cached per thread, and dropped after an error so that the next
invocation starts from a clean connection rather than an aborted transaction.

The environment is the process's on Lambda. The local runtime runs every function in
one process, so it hands each invocation its own function's variables through
`function_environment` (a context variable): each function then connects as its own
database user, as on AWS. Connections are cached per thread and per endpoint, so a
thread that runs two functions never lends one's connection to the other.
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
from lambdas.core.sync import load_stage_postgres
from lambdas.core.warehouse import connect_redshift, is_connection_error, load_stage_redshift

WAREHOUSE_KINDS = ("postgres", "redshift")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_queues: dict[tuple[str, ...], Queue] = {}
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


def warehouse_kind() -> str:
    """TXPIPE_WAREHOUSE_KIND: postgres (the local stand-in, psycopg2) or redshift (redshift-connector)."""
    kind = environ().get("TXPIPE_WAREHOUSE_KIND", "postgres")
    if kind not in WAREHOUSE_KINDS:
        raise RuntimeError(f"warehouse kind {kind!r} is not supported: use one of {', '.join(WAREHOUSE_KINDS)}")
    return kind


def warehouse() -> Any:
    endpoint = _endpoint("warehouse")
    if warehouse_kind() == "redshift":
        return cached_connection(("warehouse", endpoint), _connect_redshift_from_env)
    return cached_connection(("warehouse", endpoint),
                             lambda: connect_postgres(endpoint, application_name="txpipe-warehouse"))


def warehouse_loader() -> Callable[[Any, list[tuple[Any, ...]]], None]:
    """The bulk loader of the sync staging table for this warehouse kind (COPY is PostgreSQL-only)."""
    return load_stage_redshift if warehouse_kind() == "redshift" else load_stage_postgres


def _connect_redshift_from_env() -> Any:
    endpoint = _endpoint("warehouse")
    value = environ().get("TXPIPE_WAREHOUSE_SSL", "true").strip().lower()
    if value not in ("true", "false"):
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL must be true or false")
    ssl = value == "true"
    # Plain text exists for the loopback test shim only: credentials never cross a network without TLS.
    if not ssl and endpoint.host not in LOOPBACK_HOSTS:
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL=false is allowed only for a loopback warehouse host (the test shim)")
    variables = environ()
    target = {"workgroup": variables.get("TXPIPE_WAREHOUSE_WORKGROUP", ""),
              "cluster": variables.get("TXPIPE_WAREHOUSE_CLUSTER", ""),
              "region": variables.get("AWS_REGION") or variables.get("AWS_DEFAULT_REGION", "")}
    return connect_redshift(endpoint, ssl=ssl, application_name="txpipe-warehouse", iam_target=target)


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
    for built in list(_queues.values()):
        if hasattr(built, "close"):
            built.close()  # PgQueue: this thread's connection only


def _drop_all() -> None:
    drop_cached("oltp")
    drop_cached("warehouse")

"""What a function needs from its environment: connections, the warehouse backend and the queue.

Resolved lazily, cached per thread, and dropped after an error so that the next
invocation starts from a clean connection rather than an aborted transaction.

The environment is the process's on Lambda. The local runtime runs every function in
one process, so it hands each invocation its own function's variables through
`function_environment` (a context variable): each function then connects as its own
database user, as on AWS. Connections are cached per thread and per endpoint, so a
thread that runs two functions never lends one's connection to the other.

The warehouse is picked by TXPIPE_WAREHOUSE_KIND (postgres | redshift) and handed to the sync
as a `Warehouse` (lambdas.core.warehouse): how to connect and how to load the sync's stage.
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
from lambdas.core.warehouse import Warehouse, is_connection_error
from lambdas.core.warehouse.postgres import PostgresWarehouse
from lambdas.core.warehouse.redshift import RedshiftWarehouse, S3Stage

WAREHOUSE_KINDS = ("postgres", "redshift")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# What the Redshift warehouse's S3 staging reads (set by the stack; absent: the multi-row INSERT load).
STAGE_VARIABLES = ("TXPIPE_WAREHOUSE_STAGE_BUCKET", "TXPIPE_WAREHOUSE_STAGE_PREFIX", "TXPIPE_WAREHOUSE_COPY_ROLE")

_queues: dict[tuple[str, ...], Queue] = {}
# One backend per configuration, so that a warm function reuses its S3 client across invocations.
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


def warehouse_kind() -> str:
    """TXPIPE_WAREHOUSE_KIND: postgres (the local stand-in, psycopg2) or redshift (redshift-connector)."""
    kind = environ().get("TXPIPE_WAREHOUSE_KIND", "postgres")
    if kind not in WAREHOUSE_KINDS:
        raise RuntimeError(f"warehouse kind {kind!r} is not supported: use one of {', '.join(WAREHOUSE_KINDS)}")
    return kind


def warehouse_backend() -> Warehouse:
    """The warehouse behind its interface for TXPIPE_WAREHOUSE_KIND: how to connect and load the sync's stage.

    Redshift: TLS unless TXPIPE_WAREHOUSE_SSL=false (a loopback host only: the test shim), IAM login for the
    workgroup or cluster, and S3 staging when TXPIPE_WAREHOUSE_STAGE_BUCKET is set (then
    TXPIPE_WAREHOUSE_COPY_ROLE too; TXPIPE_WAREHOUSE_STAGE_PREFIX may be empty)."""
    variables = environ()
    kind = warehouse_kind()
    endpoint = _endpoint("warehouse")
    key = (kind, endpoint, endpoint.secret_ref,
           *(variables.get(k, "") for k in (*STAGE_VARIABLES, "TXPIPE_WAREHOUSE_SSL", "TXPIPE_WAREHOUSE_WORKGROUP",
                                            "TXPIPE_WAREHOUSE_CLUSTER", "AWS_REGION", "AWS_DEFAULT_REGION")))
    if key not in _backends:
        _backends[key] = _redshift_from_env(endpoint) if kind == "redshift" else PostgresWarehouse(endpoint)
    return _backends[key]


def warehouse() -> Any:
    """This thread's connection to the warehouse (cached; dropped after an error). The settings are checked
    first, every time: a bad one is refused before any connection is made or reused."""
    backend = warehouse_backend()
    return cached_connection(("warehouse", _endpoint("warehouse")), backend.connect)


def _redshift_from_env(endpoint: Endpoint) -> RedshiftWarehouse:
    variables = environ()
    value = variables.get("TXPIPE_WAREHOUSE_SSL", "true").strip().lower()
    if value not in ("true", "false"):
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL must be true or false")
    ssl = value == "true"
    # Plain text exists for the loopback test shim only: credentials never cross a network without TLS.
    if not ssl and endpoint.host not in LOOPBACK_HOSTS:
        raise RuntimeError("TXPIPE_WAREHOUSE_SSL=false is allowed only for a loopback warehouse host (the test shim)")
    target = {"workgroup": variables.get("TXPIPE_WAREHOUSE_WORKGROUP", ""),
              "cluster": variables.get("TXPIPE_WAREHOUSE_CLUSTER", ""),
              "region": variables.get("AWS_REGION") or variables.get("AWS_DEFAULT_REGION", "")}
    stage = None
    bucket, prefix, role = (variables.get(k, "") for k in STAGE_VARIABLES)
    if bucket:
        if not role:
            raise RuntimeError("TXPIPE_WAREHOUSE_STAGE_BUCKET is set but TXPIPE_WAREHOUSE_COPY_ROLE is not: "
                               "Redshift's COPY needs the role it reads the staged batches with")
        try:
            stage = S3Stage(bucket, prefix, role)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
    return RedshiftWarehouse(endpoint, stage=stage, ssl=ssl, iam_target=target)


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

"""The orders queue: one interface, two implementations.

- `SqsQueue`: Amazon SQS through boto3 (the AWS target; tested against moto).
- `PgQueue`: a PostgreSQL table with SQS semantics for the local target: batches,
  visibility timeout, receive count, and redrive to a dead-letter queue once a
  message has been received maxReceiveCount times. Claims use
  `FOR UPDATE SKIP LOCKED`, so concurrent pollers never receive the same message.
  moto's SQS is too slow to carry load (it rescans the queue on every send).

Both also carry the dead-letter side an operator needs (`txpipe dlq`): the store
dead-letters a message it can never store at once, with its reason
(`dead_letter`); dead letters are listed with their ages and reasons, moved back
to the queue (`redrive`: SQS's StartMessageMoveTask) or purged.

`queue_from_env()` picks one from TXPIPE_QUEUE_URL: an SQS URL (https://...) or
`pgqueue://<name>` with the database in TXPIPE_QUEUE_HOST/PORT/DB/SECRET.

Imports: `lambdas.core` only. Imported by the functions' environment (env.py) and the local target, which
creates the PostgreSQL queue's tables.
"""

from __future__ import annotations

import os

from lambdas.core import defaults
from lambdas.core.db import Endpoint
from lambdas.core.queue.base import (
    ATTR_REASON,
    REASON_LIMIT,
    SQS_BATCH_LIMIT,
    DeadLetter,
    Message,
    Queue,
    QueueError,
    QueueStats,
    message_from_record,
    reason_of_redrive,
    sqs_event,
)
from lambdas.core.queue.pg import PG_QUEUE_DDL, PgQueue
from lambdas.core.queue.sqs import SqsQueue

__all__ = ["ATTR_REASON", "PG_QUEUE_DDL", "REASON_LIMIT", "SQS_BATCH_LIMIT", "DeadLetter", "Message", "PgQueue",
           "Queue", "QueueError", "QueueStats", "SqsQueue", "message_from_record", "queue_from_env",
           "reason_of_redrive", "sqs_event"]


def queue_from_env(env: dict[str, str] | None = None) -> Queue:
    env = dict(os.environ) if env is None else env
    url = env.get("TXPIPE_QUEUE_URL", "")
    if url.startswith("pgqueue://"):
        return PgQueue.from_endpoint(
            Endpoint.from_env("queue", env), url.removeprefix("pgqueue://"),
            visibility_timeout=float(env.get("TXPIPE_QUEUE_VISIBILITY_TIMEOUT", defaults.VISIBILITY_TIMEOUT_SECONDS)),
            max_receive_count=int(env.get("TXPIPE_QUEUE_MAX_RECEIVE_COUNT", defaults.MAX_RECEIVE_COUNT)),
        )
    if url.startswith(("https://", "http://")):
        return SqsQueue(url, dlq_url=env.get("TXPIPE_DLQ_URL") or None)
    raise RuntimeError("TXPIPE_QUEUE_URL must be an SQS queue URL or pgqueue://<name>")

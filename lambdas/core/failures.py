"""What the store does when a message cannot be stored: wait and retry, or dead-letter it.

The policy, on both targets (README, "When an order cannot be stored"):

- **Transient** (the database or the network is down, a failover, too many
  connections, a lock timeout, a missing table before migrations): not the
  message's fault. It goes back to the queue hidden for a backoff that doubles
  with each receive up to a cap, so an outage is ridden out, the database is not
  hammered when it returns, and the message stays in the queue for as long as the
  queue keeps messages (see `MAX_RECEIVE_COUNT`, lambdas/core/defaults.py).
- **Terminal** (a body that can never be stored: not an order, or data the
  database refuses on its own): dead-lettered at once, with its reason.

Only `MAX_RECEIVE_COUNT` sends a message to the dead-letter queue without a
reason of ours: a message whose every delivery crashes the function (it never
reports back). It is a backstop, set so that an outage never reaches it.
"""

from __future__ import annotations

import random
from enum import Enum
from typing import Any

from lambdas.core.defaults import MAX_RECEIVE_COUNT

# SQS keeps a message at most 14 days; the orders queue keeps them that long (infra/template.yaml).
RETENTION_SECONDS = 14 * 24 * 3600
# A message is hidden for BASE * 2^(receives - 1) seconds after a transient failure, capped at CAP:
# a 2-minute RDS failover costs four or five retries, and once the database is back every waiting
# order is retried within CAP.
BACKOFF_BASE_SECONDS = 5
BACKOFF_CAP_SECONDS = 1800
# Each backoff is scaled by a random factor in [JITTER_FLOOR, 1] so that after an outage the
# waiting messages come back spread out rather than all at once.
JITTER_FLOOR = 0.75
# MAX_RECEIVE_COUNT (lambdas/core/defaults.py) is SQS's largest maxReceiveCount. With the backoff above, a
# message failing transiently on every receive reaches it only after more than RETENTION_SECONDS
# (tests/unit/test_failures.py checks the sum), so no outage the queue can ride out sends an order to the
# dead-letter queue.

# SQLSTATE classes that name the data, not the environment: the same row fails every time.
# 22: data exception (out of range, bad encoding); 23: integrity constraint violation.
TERMINAL_SQLSTATE_CLASSES = frozenset({"22", "23"})


class Failure(Enum):
    TRANSIENT = "transient"
    TERMINAL = "terminal"


def classify(exc: BaseException) -> Failure:
    """A database error is terminal only when the data itself is refused; anything else (lost
    connections, timeouts, privileges, missing tables, resource limits) may pass: transient."""
    code = getattr(exc, "pgcode", None)
    if isinstance(code, str):
        return Failure.TERMINAL if code[:2] in TERMINAL_SQLSTATE_CLASSES else Failure.TRANSIENT
    import psycopg2  # the classes psycopg2 maps those SQLSTATE classes to, for errors raised without a code

    return Failure.TERMINAL if isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError) else Failure.TRANSIENT


def backoff_seconds(receive_count: int, rand: Any = random) -> int:
    """How long to hide a message after its receive_count-th delivery failed transiently."""
    exponent = min(max(receive_count, 1) - 1, 30)
    ceiling = min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_CAP_SECONDS)
    return max(1, int(ceiling * (JITTER_FLOOR + (1 - JITTER_FLOOR) * rand.random())))


def shortest_time_to_dead_letter(max_receive_count: int = MAX_RECEIVE_COUNT) -> float:
    """The least time a message failing transiently on every receive takes to reach max_receive_count
    (every jitter at its floor)."""
    return sum(min(BACKOFF_BASE_SECONDS * 2**min(n - 1, 30), BACKOFF_CAP_SECONDS) * JITTER_FLOOR
               for n in range(1, max_receive_count))

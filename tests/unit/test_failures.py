"""The store's failure policy (lambdas/core/failures.py) and the queue settings that rest on it."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg2.errors
import pytest
from cfnlint.decode.cfn_yaml import loads

from lambdas.core import defaults, failures
from lambdas.core.failures import Failure, backoff_seconds, classify

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class _Lowest:
    def random(self) -> float:
        return 0.0


class _Highest:
    def random(self) -> float:
        return 0.999999


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_seconds(n, _Highest()) for n in (1, 2, 3, 4)] == [4, 9, 19, 39]
    assert [backoff_seconds(n, _Lowest()) for n in (1, 2, 3, 4)] == [3, 7, 15, 30]
    assert backoff_seconds(500, _Highest()) == failures.BACKOFF_CAP_SECONDS - 1
    assert backoff_seconds(10**9, _Lowest()) == int(failures.BACKOFF_CAP_SECONDS * failures.JITTER_FLOOR)
    assert backoff_seconds(0, _Lowest()) >= 1


def test_jittered_backoffs_stay_within_bounds() -> None:
    rand = random.Random(7)
    for n in range(1, 40):
        ceiling = min(failures.BACKOFF_BASE_SECONDS * 2 ** (n - 1), failures.BACKOFF_CAP_SECONDS)
        assert ceiling * failures.JITTER_FLOOR - 1 <= backoff_seconds(n, rand) <= ceiling


def test_an_outage_never_reaches_max_receive_count_before_retention() -> None:
    """Failing transiently on every receive, a message reaches maxReceiveCount only after the retention."""
    assert failures.shortest_time_to_dead_letter() > failures.RETENTION_SECONDS
    # and a routine 2-minute failover costs a handful of receives
    elapsed, receives = 0.0, 0
    while elapsed < 120:
        receives += 1
        elapsed += backoff_seconds(receives, _Lowest())
    assert receives <= 6


def test_the_template_queue_matches_the_policy() -> None:
    """The orders queue keeps messages RETENTION_SECONDS and dead-letters after MAX_RECEIVE_COUNT receives;
    the DLQ keeps them at least as long; SQS's own limits hold (maxReceiveCount 1..1000, retention ≤ 14 d)."""
    resources = loads(TEMPLATE.read_text())["Resources"]
    queue, dlq = resources["OrdersQueue"]["Properties"], resources["OrdersDeadLetterQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == failures.RETENTION_SECONDS <= 1_209_600
    assert queue["RedrivePolicy"]["maxReceiveCount"] == defaults.MAX_RECEIVE_COUNT <= 1000
    assert dlq["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]
    assert failures.BACKOFF_CAP_SECONDS <= 43200 - 900  # within SQS's 12-hour visibility ceiling


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg2.errors.CheckViolation, Failure.TERMINAL),
    (psycopg2.errors.NumericValueOutOfRange, Failure.TERMINAL),
    (psycopg2.errors.ForeignKeyViolation, Failure.TERMINAL),
    (psycopg2.errors.UndefinedTable, Failure.TRANSIENT),  # not migrated yet: not the message's fault
    (psycopg2.errors.InsufficientPrivilege, Failure.TRANSIENT),
    (psycopg2.errors.TooManyConnections, Failure.TRANSIENT),
    (psycopg2.errors.AdminShutdown, Failure.TRANSIENT),
    (psycopg2.errors.QueryCanceled, Failure.TRANSIENT),
    (psycopg2.errors.DeadlockDetected, Failure.TRANSIENT),
    (psycopg2.errors.LockNotAvailable, Failure.TRANSIENT),
])
def test_only_data_errors_are_terminal(error: type[Exception], kind: Failure) -> None:
    assert classify(error()) is kind


def test_errors_without_a_sqlstate_are_transient() -> None:
    assert classify(psycopg2.OperationalError("could not connect")) is Failure.TRANSIENT
    assert classify(OSError("secret file missing")) is Failure.TRANSIENT

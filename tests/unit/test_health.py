"""What `status` calls a problem (txpipe_cli/health.py), on either target's status."""

from __future__ import annotations

import json

import pytest

from txpipe_cli.health import Kind, Problem, next_step, problems


def test_a_healthy_status_has_no_problem() -> None:
    status = {"parts": {"postgres": {"alive": True}, "runtime": {"alive": True, "state": "alive"}},
              "pipeline": {"errors": {}, "queue": {"visible": 3, "in_flight": 1, "dead_letters": 0}},
              "schedules": {"sync": {"last_run": {"result": {"synced": 2}}}}, "alarms": {}}
    assert problems(status) == []


def test_every_problem_is_named_on_one_line() -> None:
    status = {
        "parts": {"postgres": {"alive": False}, "runtime": {"alive": False, "state": "hung"}},
        "pipeline": {"errors": {"warehouse": "connection refused\nDETAIL: x"},
                     "queue": {"visible": 0, "in_flight": 0, "dead_letters": 4}},
        "schedules": {"sync": {"last_run": {"error": "warehouse away"}}},
        "alarms": {"txpipe-prod-sync-errors": "Threshold Crossed"},
    }
    assert problems(status) == [
        "postgres dead", "runtime hung", "warehouse unreachable (connection refused DETAIL: x)",
        "the last scheduled sync failed (warehouse away)",
        "alarm txpipe-prod-sync-errors is firing (Threshold Crossed)", "4 dead letters wait (txpipe dlq list)"]


def test_figures_that_could_not_be_read_are_a_problem() -> None:
    assert problems({"parts": {"stack": {"alive": True}}, "pipeline_error": "the ops function failed: timeout"}) == [
        "pipeline figures unavailable (the ops function failed: timeout)"]


def test_each_problem_has_its_kind_and_is_still_its_line() -> None:
    status = {"parts": {"runtime": {"alive": False, "state": "hung"}}, "pipeline_error": "timeout",
              "pipeline": {"errors": {"oltp": "refused"}, "queue": {"dead_letters": 1}},
              "schedules": {"sync": {"last_run": {"error": "x"}}}, "alarms": {"a": "b"}}
    found = problems(status)
    assert [p.kind for p in found] == [Kind.PART_DOWN, Kind.UNREACHABLE, Kind.NO_FIGURES, Kind.SYNC_FAILED,
                                       Kind.ALARM, Kind.DEAD_LETTERS]
    assert json.loads(json.dumps(found)) == found  # status --json prints them as the lines they are


@pytest.mark.parametrize(("kinds", "step"), [
    ([Kind.DEAD_LETTERS, Kind.ALARM, Kind.DISK], "txpipe deploy once space is freed on the database's disk"),
    ([Kind.SYNC_FAILED, Kind.UNREACHABLE], "txpipe deploy"),
    ([Kind.NO_FIGURES], "txpipe deploy"),
    ([Kind.PART_DOWN], "txpipe deploy"),
    ([Kind.ALARM, Kind.SYNC_FAILED], "txpipe logs sync"),
    ([Kind.DEAD_LETTERS, Kind.ALARM], "txpipe logs --target aws"),
    ([Kind.DEAD_LETTERS], "txpipe dlq list"),
])
def test_the_next_step_is_chosen_by_kind_never_by_the_words(kinds: list[Kind], step: str) -> None:
    """Every problem here reads like a disk problem: only its kind counts (a sync failing on a warehouse
    named 'disk ...' is still a sync failure)."""
    assert next_step({}, [Problem(kind, "disk full: alarm the last scheduled sync failed") for kind in kinds]) == step

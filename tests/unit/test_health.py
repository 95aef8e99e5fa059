"""What `status` calls a problem (txpipe_cli/health.py), on either target's status."""

from __future__ import annotations

from txpipe_cli.health import problems


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

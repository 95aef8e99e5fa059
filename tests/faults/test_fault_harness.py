"""The fault harness's short profile (benchmarks/faults.py), as CI runs it: every trial ends with
nothing lost, nothing doubled, no dead letter from an outage, and the floods within their figures."""

from __future__ import annotations

from benchmarks import faults


def test_short_fault_harness(capsys) -> None:
    """kill -9s, outages, a hung runtime, a killed send, floods: the operator's recovery leaves every order once."""
    lines: list[str] = []
    rows = faults.run(faults.SHORT, log=lines.append)
    with capsys.disabled():
        faults.render(rows)
    assert len(rows) == len(faults.TRIALS)
    failed = [f"{r.trial}: doubled {r.doubled}, lost {r.lost}, dead letters {r.dead_letters}; {r.note}"
              for r in rows if not r.ok]
    assert not failed, "\n".join(failed + lines)
    assert sum(r.accepted for r in rows) > 0 and all(r.doubled == r.lost == r.dead_letters == 0 for r in rows)

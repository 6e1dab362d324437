"""``populate`` with incidents and scheduled starts: what the reaction benchmark relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.emulator import Emulator, Population
from tests.support.clocks import FakeClock

PID = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _emu(seed: int = 0) -> Emulator:
    return Emulator(project_id=PID, token="t", wall=FakeClock(T0, mono=0.0), speed=0, seed=seed)


def _populate(emu: Emulator, **kw: object) -> Population:
    args: dict[str, object] = {
        "workflows": 200,
        "executions_per_workflow": 5,
        "seed": 3,
        "incidents": 20,
        "within": 600.0,
        "quiet": True,
    }
    args.update(kw)
    return emu.populate(**args)  # type: ignore[arg-type]


def test_incidents_happen_at_the_announced_emulated_time() -> None:
    emu = _emu()
    pop = _populate(emu)
    assert len(pop) == 200
    assert len(pop.incidents) == 20
    assert {i.kind for i in pop.incidents} == {"fail", "pause"}
    assert sum(i.kind == "pause" for i in pop.incidents) == 10
    assert len({i.workflow_id for i in pop.incidents}) == 20
    assert [i.at for i in pop.incidents] == sorted(i.at for i in pop.incidents)
    # Quiet: before any incident starts, nothing is waiting for an operator.
    waiting = [
        ex for wid in pop for ex in emu.workflow(wid).executions.values() if ex.status == "pausing"
    ]
    assert waiting == []
    for inc in pop.incidents:
        assert T0 <= inc.start_at < T0 + timedelta(seconds=600)
        assert inc.execution_id not in emu.workflow(inc.workflow_id).executions
    assert sum(len(emu.workflow(w).executions) for w in pop) == 200 * 5 - 20

    last = pop.incidents[-1]
    emu.advance((last.at - emu.now()).total_seconds())
    for inc in pop.incidents:
        ex = emu.execution(inc.workflow_id, inc.execution_id)
        run = ex.runs[inc.node_id]
        assert ex.status == "pausing"
        assert run.status == ("fail" if inc.kind == "fail" else "pausing")
        happened = run.end_ms if inc.kind == "fail" else run.begin_ms
        assert happened == int(inc.at.timestamp() * 1000)
        assert ex.begin_ms == int(inc.start_at.timestamp() * 1000)
    started = emu.changes("scheduled_start")
    assert len(started) == 20
    assert {c["execution_id"] for c in started} == {i.execution_id for i in pop.incidents}

    # A day later (crons have fired) the incidents are still the only executions waiting.
    emu.advance(86_400)
    waiting_ids = {
        ex.execution_id
        for wid in pop
        for ex in emu.workflow(wid).executions.values()
        if ex.status == "pausing"
    }
    assert waiting_ids == {i.execution_id for i in pop.incidents}
    assert len(emu.changes("cron_fired")) > 0


def test_fail_times_one_recovers_on_restart_and_none_fails_always() -> None:
    emu = _emu()
    pop = _populate(emu, pause_share=0.0, incidents=2, fail_times=1)
    emu.advance(700)
    for inc in pop.incidents:
        ex = emu.execution(inc.workflow_id, inc.execution_id)
        ex.operate("restart", inc.node_id, emu.clock.now_ms())
    emu.advance(60)
    assert {emu.execution(i.workflow_id, i.execution_id).status for i in pop.incidents} == {
        "success"
    }

    emu = _emu()
    pop = _populate(emu, pause_share=0.0, incidents=1, fail_times=None)
    emu.advance(700)
    inc = pop.incidents[0]
    emu.execution(inc.workflow_id, inc.execution_id).operate(
        "restart", inc.node_id, emu.clock.now_ms()
    )
    emu.advance(60)
    assert emu.execution(inc.workflow_id, inc.execution_id).status == "pausing"


def test_populate_is_seeded() -> None:
    a, b = _populate(_emu(seed=5)), _populate(_emu(seed=5))
    assert a == b
    c = _populate(_emu(seed=5), seed=4)
    assert [i.at for i in c.incidents] != [i.at for i in a.incidents]


def test_populate_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="incidents"):
        _populate(_emu(), workflows=3, incidents=4)
    with pytest.raises(ValueError, match="pause_share"):
        _populate(_emu(), pause_share=1.5)


def test_start_execution_at_a_future_emulated_time() -> None:
    emu = _emu()
    wid = emu.add_workflow(name="later", nodes=[{"id": "a", "duration": 5}])
    eid = emu.start_execution(wid, at=T0 + timedelta(minutes=10))
    assert emu.workflow(wid).executions == {}
    emu.advance(599)
    assert emu.workflow(wid).executions == {}
    emu.advance(1)
    assert emu.execution(wid, eid).status == "executing"
    assert emu.ledger[-1].method == "START"
    assert emu.ledger[-1].time == T0 + timedelta(minutes=10)
    # A time in the past (or now) starts it at once, as before.
    other = emu.start_execution(wid, at=T0)
    assert emu.execution(wid, other).begin_ms == emu.clock.now_ms()

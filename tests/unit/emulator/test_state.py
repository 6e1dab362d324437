"""The execution state machine and cron firing, driven by jumping emulated time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.emulator import Emulator
from daemon.emulator.ledger import Ledger
from daemon.emulator.scenario import read_scenario
from daemon.emulator.simclock import EmuClock
from daemon.emulator.state import Behaviour, Execution, NodeSpec, NotAllowed, UnknownNode
from daemon.kernel.errors import ConfigError
from tests.support.clocks import FakeClock

PID = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _exec(*nodes: NodeSpec, seed: int = 0) -> Execution:
    return Execution(
        workflow_id="wf",
        execution_id="ex-0001",
        project_id=PID,
        nodes=nodes,
        begin_ms=0,
        created_by="t",
        seed=seed,
    )


SUCCEED = Behaviour()


def task(nid: str, behaviour: Behaviour = SUCCEED, ms: int = 1000) -> NodeSpec:
    return NodeSpec(id=nid, name=nid, kind="task", duration_ms=ms, behaviour=behaviour)


def test_nodes_run_in_order_then_success() -> None:
    ex = _exec(task("a"), task("b", ms=2000))
    assert ex.status == "executing"
    assert [r.node_id for r in ex.runs.values()] == ["a"]
    assert not ex.advance(999)
    assert ex.advance(1000)
    assert ex.runs["a"].status == "success"
    assert ex.runs["b"].status == "executing"
    ex.advance(3000)
    assert ex.status == "success"
    assert ex.end_ms == 3000
    assert ex.brief()["execution_result_list"][1]["end_time"] == 3000


def test_fail_times_then_restart_succeeds_on_third_attempt() -> None:
    ex = _exec(task("a", Behaviour("fail_times", times=2)), task("b"))
    ex.advance(1000)
    run = ex.runs["a"]
    assert (ex.status, run.status) == ("pausing", "fail")
    assert run.output == {"error": "node a failed on attempt 1", "attempt": 1, "exit_code": 1}
    ex.operate("restart", "a", 5000)
    assert (ex.status, ex.runs["a"].status, ex.runs["a"].attempt) == ("executing", "executing", 2)
    assert ex.runs["a"].begin_ms == 5000
    ex.advance(6000)
    assert ex.status == "pausing"
    ex.operate("restart", "a", 6000)
    ex.advance(7000)
    assert ex.runs["a"].status == "success"
    assert ex.runs["a"].output["attempt"] == 3
    ex.advance(8000)
    assert ex.status == "success"


def test_skip_keeps_fail_marks_output_and_moves_on() -> None:
    ex = _exec(task("a", Behaviour("fail")), task("b"))
    ex.advance(1000)
    ex.operate("skip", "a", 1500)
    assert ex.runs["a"].status == "fail"
    assert ex.runs["a"].output["skipped"] is True
    assert ex.runs["b"].begin_ms == 1500
    ex.advance(2500)
    assert ex.status == "success"


def test_pause_node_waits_for_continue() -> None:
    ex = _exec(task("a"), NodeSpec(id="p", name="p", kind="pause"), task("c"))
    ex.advance(10_000_000)
    assert (ex.status, ex.runs["p"].status) == ("pausing", "pausing")
    with pytest.raises(NotAllowed):
        ex.operate("restart", "p", 2000)
    with pytest.raises(NotAllowed):
        ex.operate("continue", "a", 2000)
    ex.operate("continue", "p", 2000)
    assert ex.runs["p"].status == "success"
    ex.advance(3000)
    assert ex.status == "success"


def test_operations_not_allowed_while_executing_or_finished() -> None:
    ex = _exec(task("a", Behaviour("fail")))
    with pytest.raises(NotAllowed):
        ex.operate("restart", "a", 10)
    with pytest.raises(UnknownNode):
        ex.operate("restart", "zz", 10)
    ex.advance(1000)
    ex.terminate(1000)
    with pytest.raises(NotAllowed):
        ex.terminate(1100)  # already canceling
    with pytest.raises(NotAllowed):
        ex.operate("skip", "a", 1100)


def test_terminate_goes_canceling_then_cancel_after_one_second() -> None:
    ex = _exec(task("a", ms=3_600_000))
    ex.terminate(5000)
    assert ex.status == "canceling"
    ex.advance(5999)
    assert ex.status == "canceling"
    ex.advance(10_000_000)  # the node's due time must not complete it now
    assert ex.status == "cancel"
    assert ex.end_ms == 6000
    assert ex.runs["a"].status == "cancel"
    with pytest.raises(NotAllowed):
        ex.terminate(7000)


def test_caches_drop_on_change() -> None:
    ex = _exec(task("a"))
    first = ex.detail_bytes()
    assert ex.detail_bytes() is first
    ex.advance(1000)
    assert b'"success"' in ex.detail_bytes()
    assert "created_by" in ex.brief()
    assert b"created_by" not in ex.detail_bytes()


@settings(deadline=None, max_examples=50)
@given(seed=st.integers(0, 2**32), attempt=st.integers(1, 50), p=st.floats(0, 1))
def test_fail_probability_is_deterministic(seed: int, attempt: int, p: float) -> None:
    b = Behaviour("fail_probability", probability=p)
    first = b.fails(seed, "ex", "n", attempt)
    assert first == b.fails(seed, "ex", "n", attempt)
    if p == 0:
        assert not first
    if p == 1:
        assert first


def test_fail_probability_rate_is_close() -> None:
    b = Behaviour("fail_probability", probability=0.3)
    fails = sum(b.fails(7, f"ex{i}", "n", 1) for i in range(4000))
    assert 0.26 < fails / 4000 < 0.34


def test_clock_speed_change_keeps_continuity() -> None:
    wall = FakeClock(T0, mono=0.0)
    clock = EmuClock(speed=60, wall=wall)
    wall.mono = 10.0
    assert clock.now_ms() == T0.timestamp() * 1000 + 600_000
    clock.set_speed(1)
    assert clock.now_ms() == T0.timestamp() * 1000 + 600_000
    wall.mono = 11.0
    assert clock.now_ms() == T0.timestamp() * 1000 + 601_000
    clock.advance(60)
    assert clock.now() == datetime(2026, 1, 5, 8, 11, 1, tzinfo=UTC)


def _emu() -> tuple[Emulator, FakeClock]:
    wall = FakeClock(T0, mono=0.0)
    return Emulator(project_id=PID, token="t", wall=wall, speed=1.0), wall


def test_cron_fires_only_while_enabled() -> None:
    emu, _ = _emu()
    wid = emu.add_workflow(
        name="c", type="cron", cron="*/10 * * * *", nodes=[{"id": "a", "duration": 5}]
    )
    emu.advance(3600)  # 08:00 -> 09:00: fires at 08:10 .. 09:00
    fired = emu.changes("cron_fired")
    assert len(fired) == 6
    assert [e.time.minute for e in emu.ledger] == [10, 20, 30, 40, 50, 0]
    assert {e.method for e in emu.ledger} == {"CRON"}
    begins = sorted(ex.begin_ms for ex in emu.workflow(wid).executions.values())
    assert begins[0] == (T0.timestamp() + 600) * 1000
    statuses = [ex.status for ex in emu.workflow(wid).executions.values()]
    assert statuses == ["success"] * 5 + ["executing"]  # the 09:00 run has just begun

    emu.world.set_trigger(emu.world.workflows[wid], False, emu.clock.now_ms())
    emu.advance(7200)
    assert len(emu.changes("cron_fired")) == 6

    emu.world.set_trigger(emu.world.workflows[wid], True, emu.clock.now_ms())
    emu.advance(600)  # 11:00 -> 11:10: exactly one fire, nothing caught up from the gap
    assert len(emu.changes("cron_fired")) == 7


def test_disabled_at_creation_never_fires() -> None:
    emu, _ = _emu()
    emu.add_workflow(name="c", type="cron", cron="* * * * *", trigger_enabled=False)
    emu.advance(86_400)
    assert emu.changes("cron_fired") == []


def test_populate_is_fast_and_mostly_finished() -> None:
    emu, _ = _emu()
    ids = emu.populate(workflows=2000, executions_per_workflow=5, seed=1)
    assert len(ids) == 2000
    assert emu.tick() == 0  # history is not replayed as a storm of cron fires
    total = sum(len(emu.world.workflows[w].executions) for w in ids)
    assert total == 10_000
    active = sum(len(emu.world.workflows[w].active) for w in ids)
    assert active < 0.5 * total  # paused-on-fail and running ones only
    statuses = {ex.status for w in ids for ex in emu.world.workflows[w].executions.values()}
    assert {"success", "pausing"} <= statuses


def test_ledger_limit_keeps_sequence_numbers() -> None:
    ledger = Ledger(max_entries=10)
    for i in range(25):
        ledger.append(
            time=T0,
            method="GET",
            path=f"/{i}",
            query={},
            auth="token",
            status=200,
            request_id=str(i),
        )
    assert ledger.last_seq == 25
    assert len(ledger.entries) <= 10
    assert [e.seq for e in ledger.since(22)] == [23, 24, 25]
    assert ledger.since(0)[0].seq == ledger.dropped + 1


def test_a_diamond_runs_its_branches_at_once_and_pauses_while_any_branch_waits() -> None:
    ex = _exec(
        NodeSpec(id="start", name="start", duration_ms=1000),
        NodeSpec(id="a", name="a", parents=("start",), behaviour=Behaviour("fail")),
        NodeSpec(id="b", name="b", parents=("start",), duration_ms=9000),
        NodeSpec(id="gate", name="gate", kind="pause", parents=("start",)),
        NodeSpec(id="join", name="join", parents=("a", "b", "gate"), duration_ms=1000),
    )
    ex.advance(1000)
    assert {n: r.begin_ms for n, r in ex.runs.items()} == {
        "start": 0,
        "a": 1000,
        "b": 1000,
        "gate": 1000,
    }
    assert ex.status == "pausing"  # the gate waits, the tasks run on
    ex.advance(6000)
    assert ex.runs["a"].status == "fail"
    assert ex.runs["b"].status == "executing"
    ex.operate("continue", "gate", 6000)
    assert ex.status == "pausing"  # a still waits
    with pytest.raises(NotAllowed):
        ex.operate("restart", "b", 6000)  # running, not waiting
    ex.advance(10_000)
    assert ex.runs["b"].status == "success"
    assert "join" not in ex.runs
    ex.operate("skip", "a", 10_000)
    assert ex.status == "executing"
    assert ex.runs["join"].begin_ms == 10_000
    ex.advance(11_000)
    assert ex.status == "success"
    assert ex.brief()["execution_result_list"][-1]["node_id"] == "join"


def test_scenario_graphs_are_checked() -> None:
    def wf(nodes: list[dict[str, object]]) -> dict[str, object]:
        return {"workflows": [{"name": "w", "nodes": nodes}]}

    sc = read_scenario(
        wf([{"id": "x"}, {"id": "y", "parents": []}, {"id": "z", "parents": ["x", "y"]}])
    )
    assert [n.parents for n in sc.workflows[0].nodes] == [None, (), ("x", "y")]
    with pytest.raises(
        ConfigError, match=r"workflows\[0\].nodes: node 'y': unknown parents \['q'\]"
    ):
        read_scenario(wf([{"id": "x"}, {"id": "y", "parents": ["q"]}]))
    with pytest.raises(ConfigError, match="a cycle"):
        read_scenario(wf([{"id": "x", "parents": ["y"]}, {"id": "y", "parents": ["x"]}]))
    with pytest.raises(ConfigError, match=r"nodes\[1\].parents: expected a list"):
        read_scenario(wf([{"id": "x"}, {"id": "y", "parents": "x"}]))

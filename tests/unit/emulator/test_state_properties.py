"""Invariants of the execution state machine under any sequence of time and operations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.emulator.state import Behaviour, Execution, NodeSpec, NotAllowed, UnknownNode

behaviours = st.one_of(
    st.just(Behaviour("succeed")),
    st.just(Behaviour("fail")),
    st.integers(0, 3).map(lambda n: Behaviour("fail_times", times=n)),
    st.floats(0, 1).map(lambda p: Behaviour("fail_probability", probability=p)),
)
node_specs = st.lists(
    st.tuples(
        st.sampled_from(["task", "pause"]),
        st.integers(0, 5000),
        behaviours,
        # None: after the node before it (a sequence); else indices of earlier nodes
        st.one_of(st.none(), st.lists(st.integers(0, 4), max_size=3)),
    ),
    max_size=5,
)
steps = st.lists(
    st.tuples(
        st.integers(0, 4000),
        st.sampled_from(["advance", "restart", "skip", "continue", "terminate"]),
        st.integers(0, 5),
    ),
    max_size=30,
)
LIVE = {"executing", "pausing", "canceling"}


@settings(deadline=None, max_examples=300)
@given(specs=node_specs, plan=steps, seed=st.integers(0, 10))
def test_invariants_hold(
    specs: list[tuple[str, int, Behaviour, list[int] | None]],
    plan: list[tuple[int, str, int]],
    seed: int,
) -> None:
    nodes = tuple(
        NodeSpec(
            id=f"n{i}",
            name=f"n{i}",
            kind=kind,  # type: ignore[arg-type]  # drawn from the NodeKind values
            duration_ms=ms,
            behaviour=b,
            parents=None if ps is None else tuple(sorted({f"n{p}" for p in ps if p < i})),
        )
        for i, (kind, ms, b, ps) in enumerate(specs)
    )
    sequential = all(spec[3] is None for spec in specs)
    ex = Execution(
        workflow_id="w",
        execution_id="e",
        project_id="p" * 32,
        nodes=nodes,
        begin_ms=0,
        created_by="t",
        seed=seed,
    )
    now = 0
    last_update = ex.last_update_ms
    for dt, op, idx in plan:
        now += dt
        was_finished = ex.finished
        before = dict(ex.brief())
        ex.advance(now)
        node_id = f"n{idx}"
        try:
            if op == "terminate":
                ex.terminate(now)
            elif op != "advance":
                ex.operate(op, node_id, now)
        except NotAllowed:
            pass
        except UnknownNode:
            assert idx >= len(nodes)
        if was_finished:
            assert ex.brief() == before, "a finished execution never changes"
        assert ex.status in LIVE | {"success", "cancel"}
        assert ex.last_update_ms >= last_update
        last_update = ex.last_update_ms
        runs = list(ex.runs.values())
        if sequential:
            assert [r.node_id for r in runs] == [n.id for n in nodes[: len(runs)]]
        for run in runs:
            assert run.end_ms is None or run.end_ms >= run.begin_ms
            # a node starts only once every parent is done
            assert all(p in ex.done for p in ex.parents[run.node_id])
        waiting = ex.waiting()
        if ex.status == "executing":
            assert not waiting
            assert ex.due_ms is not None
            assert all(ex.runs[n].status == "executing" for n in ex.due)
        if ex.status == "pausing":
            assert waiting, "pausing while (and only while) some branch waits"
            assert all(ex.runs[n.id].status in ("fail", "pausing") for n in waiting)
        if ex.status == "success":
            assert all(r.status in ("success", "fail") for r in runs)
            assert len(runs) == len(nodes)
            assert ex.done == {n.id for n in nodes}
            assert all(r.output.get("skipped") for r in runs if r.status == "fail")
        if ex.finished:
            assert ex.end_ms is not None
            assert ex.end_ms <= now

"""Hypothesis properties of ``decide`` with several stopped nodes: a diamond workflow
whose three branches fail, pause and run again independently, every action fed back as a
journal row with a random outcome (as in ``test_properties``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.model import Execution, NodeRun, Status, Workflow, WorkflowNode
from daemon.policy import Decision, Rule, decide
from tests.support.decisions import T0, ms, rule

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = ["applied", "pending", "unknown", "rejected", "failed", "resolved_not_applied", "moot"]
RETRYABLE = {"failed", "resolved_not_applied"}
BRANCHES = ("a", "b", "c")
DIAMOND = Workflow(
    id="wf-patch",
    name="diamond",
    nodes=(
        WorkflowNode(id="start", name="start"),
        WorkflowNode(id="a", name="left", parent_node="start"),
        WorkflowNode(id="b", name="middle", parent_node="start"),
        WorkflowNode(id="c", name="gate", parent_node="start"),
        WorkflowNode(id="join", name="join", parent_node="a,b,c"),
    ),
)


@st.composite
def rule_pair(draw: st.DrawFn) -> tuple[Rule, Rule]:
    """One rule for failed nodes and one for paused ones, with any limits."""

    def body(state: str, action: str, fallback: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": f"r-{state}",
            "action": action,
            "match": {"status": state},
            "max_attempts": draw(st.integers(1, 3)),
            "backoff": {"initial": draw(st.integers(1, 300)), "jitter": draw(st.floats(0, 1))},
            "delay": draw(st.integers(0, 600)),
            "fallback": fallback,
        }
        if draw(st.booleans()):
            out["deadline"] = draw(st.integers(60, 4 * 3600))
        return out

    failed = body(
        "failed",
        draw(st.sampled_from(["restart", "skip", "notify"])),
        draw(st.sampled_from(["skip", "leave"])),
    )
    paused = body("paused", draw(st.sampled_from(["continue", "notify"])), "leave")
    return rule(**failed), rule(**paused)


@dataclass(frozen=True)
class Step:
    seconds: int
    states: tuple[str, str, str]
    """Each branch: failed | paused | running | success."""
    rerun: tuple[bool, bool, bool]
    outcome: str


branch_state = st.sampled_from(["failed", "paused", "running", "success"])
steps = st.lists(
    st.builds(
        Step,
        seconds=st.integers(0, 900),
        states=st.tuples(branch_state, branch_state, branch_state),
        rerun=st.tuples(st.booleans(), st.booleans(), st.booleans()),
        outcome=st.sampled_from(OUTCOMES),
    ),
    min_size=1,
    max_size=30,
)
NODE_STATUS = {
    "failed": Status.FAIL,
    "paused": Status.PAUSING,
    "running": Status.EXECUTING,
    "success": Status.SUCCESS,
}


def diamond(states: tuple[str, ...], runs: tuple[int, ...]) -> Execution:
    waiting = any(s in ("failed", "paused") for s in states)
    nodes = [NodeRun(node_id="start", status=Status.SUCCESS, begin_time=ms(T0))]
    for node_id, state, run in zip(BRANCHES, states, runs, strict=True):
        began = ms(T0 + timedelta(minutes=1, seconds=run))
        ended = None if state in ("running", "paused") else began + 1000
        nodes.append(
            NodeRun(node_id=node_id, status=NODE_STATUS[state], begin_time=began, end_time=ended)
        )
    return Execution(
        workflow_id="wf-patch",
        execution_id="ex-1",
        status=Status.PAUSING if waiting else Status.EXECUTING,
        begin_time=ms(T0),
        nodes=tuple(nodes),
    )


@dataclass
class Story:
    decisions: list[tuple[Any, Decision]]
    journal: dict[str, PastWrite]
    inputs: list[tuple[Execution, ExecutionFacts]]


def play(rules: tuple[Rule, Rule], story: list[Step]) -> Story:
    now = T0 + timedelta(minutes=1)
    runs = [0, 0, 0]
    first_seen: dict[str, Any] = {}
    journal: dict[str, PastWrite] = {}
    seen: list[tuple[Any, Decision]] = []
    inputs: list[tuple[Execution, ExecutionFacts]] = []
    for step in story:
        now += timedelta(seconds=step.seconds)
        for i, node_id in enumerate(BRANCHES):
            if step.rerun[i]:
                runs[i] += 1
                first_seen.pop(node_id, None)
            if step.states[i] in ("failed", "paused"):
                first_seen.setdefault(node_id, now)
        ex = diamond(step.states, tuple(runs))
        facts = ExecutionFacts(
            execution_id="ex-1", writes=tuple(journal.values()), first_seen=dict(first_seen)
        )
        d = decide(ex, DIAMOND, list(rules), facts, now, {})
        seen.append((now, d))
        inputs.append((ex, facts))
        for a in d.actions:
            journal[a.key] = PastWrite(
                key=a.key,
                kind=a.kind,
                node_id=a.node_id,
                attempt=a.attempt,
                rule=a.rule,
                outcome=step.outcome,
                at=now,
                observed=a.observed,
            )
    return Story(seen, journal, inputs)


def segment(key: str) -> str:
    return key.rsplit("/", 2)[1]


@PROPS
@given(rule_pair(), steps)
def test_never_more_than_max_attempts_per_node(rules: tuple[Rule, Rule], story: list[Step]) -> None:
    journal = play(rules, story).journal
    for node_id in BRANCHES:
        for r in rules:
            limit = 1 if r.action == "notify" else r.max_attempts
            mine = [
                k for k, w in journal.items() if w.node_id == node_id and segment(k) == r.action
            ]
            assert len(mine) <= limit, (node_id, r.name, mine)
        fallbacks = [
            k for k, w in journal.items() if w.node_id == node_id and "fallback-" in segment(k)
        ]
        assert len(fallbacks) <= 2  # at most one per rule (a node can fail, then pause)


@PROPS
@given(rule_pair(), steps)
def test_each_pass_acts_once_per_stopped_node_and_only_on_them(
    rules: tuple[Rule, Rule], story: list[Step]
) -> None:
    played = play(rules, story)
    for (now, d), step in zip(played.decisions, story, strict=True):
        targets = [a.node_id for a in d.actions]
        assert len(targets) == len(set(targets))
        stopped = {
            n for n, s in zip(BRANCHES, step.states, strict=True) if s in ("failed", "paused")
        }
        assert set(targets) <= stopped
        assert all(a.key.startswith(f"exec/ex-1/{a.node_id}/") for a in d.actions)
        assert d.recheck_at is None or d.recheck_at > now


@PROPS
@given(rule_pair(), steps)
def test_same_input_same_output(rules: tuple[Rule, Rule], story: list[Step]) -> None:
    first = play(rules, story)
    second = play((replace(rules[0]), replace(rules[1])), story)
    assert first.decisions == second.decisions
    assert first.journal == second.journal


@PROPS
@given(
    rule_pair(),
    steps,
    st.integers(0, 3600),
    st.sampled_from([o for o in OUTCOMES if o not in RETRYABLE]),
)
def test_observing_the_same_state_twice_adds_no_action(
    rules: tuple[Rule, Rule], story: list[Step], later: int, outcome: str
) -> None:
    played = play(rules, story)
    for (now, d), (ex, facts) in zip(played.decisions, played.inputs, strict=True):
        if not d.actions:
            continue
        fed = [
            PastWrite(
                key=a.key,
                kind=a.kind,
                node_id=a.node_id,
                attempt=a.attempt,
                rule=a.rule,
                outcome=outcome,
                at=now,
                observed=a.observed,
            )
            for a in d.actions
        ]
        keys = {w.key for w in fed}
        writes = (*(w for w in facts.writes if w.key not in keys), *fed)
        again = decide(
            ex, DIAMOND, list(rules), replace(facts, writes=writes), now + timedelta(seconds=later)
        )
        # other branches may come due meanwhile; the ones just acted on must not
        acted = {a.node_id for a in d.actions}
        assert not [a for a in again.actions if a.node_id in acted]


def test_a_branch_moving_does_not_count_as_our_write_taking_effect() -> None:
    """Two failed branches restarted together; then one runs again: the other still waits
    for its own write (no second attempt while the state of *its* node has not moved),
    although the execution's current node, part of the fingerprint, changed."""
    failed = rule(name="r-failed", action="restart", match={"status": "failed"}, max_attempts=3)
    ex = diamond(("failed", "failed", "success"), (0, 0, 0))
    d = decide(
        ex, DIAMOND, [failed], ExecutionFacts(execution_id="ex-1"), T0 + timedelta(minutes=2)
    )
    assert sorted(a.node_id for a in d.actions) == ["a", "b"]
    assert {a.key for a in d.actions} == {"exec/ex-1/a/restart/1", "exec/ex-1/b/restart/1"}
    rows = tuple(
        PastWrite(
            key=a.key,
            kind=a.kind,
            node_id=a.node_id,
            attempt=a.attempt,
            rule=a.rule,
            outcome="applied",
            at=T0 + timedelta(minutes=2),
            observed=a.observed,
        )
        for a in d.actions
    )
    moved = diamond(("running", "failed", "success"), (5, 0, 0))
    later = decide(
        moved,
        DIAMOND,
        [failed],
        ExecutionFacts(execution_id="ex-1", writes=rows),
        T0 + timedelta(minutes=3),
    )
    assert later.actions == ()
    assert any("unchanged since restart attempt 1" in r for r in later.reasons)

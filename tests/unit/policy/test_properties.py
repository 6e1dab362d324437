"""Hypothesis properties of ``decide``, driven by feeding its own actions back as journal rows.

A story is a random sequence of polls: time moves on, the stopped node sometimes runs
again and stops again (state moves), and every action decide asks for is journaled with a
random executor outcome, exactly as the engine would hand it back next time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.model import Execution, Status
from daemon.policy import Decision, Rule, decide
from tests.support.decisions import T0, WORKFLOW, execution, rule

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = [
    "applied",
    "pending",
    "unknown",
    "rejected",
    "failed",
    "resolved_not_applied",
    "resolved_applied",
    "moot",
]
RETRYABLE = {"failed", "resolved_not_applied"}


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    """Any valid rule for a failed or a paused node (``rule.status[0]`` is the state)."""
    state = draw(st.sampled_from(["failed", "paused"]))
    if state == "failed":
        action = draw(st.sampled_from(["restart", "skip", "terminate", "notify"]))
        fallback = draw(st.sampled_from(["skip", "terminate", "leave"]))
    else:
        action = draw(st.sampled_from(["continue", "terminate", "notify"]))
        fallback = draw(st.sampled_from(["terminate", "leave"]))
    body: dict[str, Any] = {
        "action": action,
        "match": {"status": state},
        "max_attempts": draw(st.integers(1, 4)),
        "backoff": {
            "initial": draw(st.integers(1, 300)),
            "factor": draw(st.floats(0.5, 3.0)),
            "max": draw(st.integers(1, 900)),
            "jitter": draw(st.floats(0.0, 1.0)),
        },
        "delay": draw(st.integers(0, 600)),
        "fallback": fallback,
        "dry_run": draw(st.booleans()),
    }
    if draw(st.booleans()):
        body["deadline"] = draw(st.integers(60, 4 * 3600))
    return rule(**body)


@dataclass(frozen=True)
class Step:
    seconds: int
    rerun: bool
    outcome: str


steps = st.lists(
    st.builds(
        Step,
        seconds=st.integers(0, 900),
        rerun=st.booleans(),
        outcome=st.sampled_from(OUTCOMES),
    ),
    min_size=1,
    max_size=40,
)


@dataclass
class Story:
    decisions: list[tuple[Any, Decision]]
    journal: dict[str, PastWrite]
    inputs: list[tuple[Execution, ExecutionFacts]]


def play(
    r: Rule,
    story: list[Step],
    *,
    global_dry: bool,
    state: str | None = None,
    status: Status | None = None,
) -> Story:
    state = state or r.status[0]
    now = T0 + timedelta(minutes=1)
    run = 0
    first_seen = {"patch": now}
    journal: dict[str, PastWrite] = {}
    seen: list[tuple[Any, Decision]] = []
    inputs: list[tuple[Execution, ExecutionFacts]] = []
    for step in story:
        now += timedelta(seconds=step.seconds)
        if step.rerun:
            run += 1
            first_seen = {"patch": now}  # the engine forgets and sees the node anew
        ex = execution(state=state, run=run, status=status)
        facts = ExecutionFacts(
            execution_id="ex-1", writes=tuple(journal.values()), first_seen=first_seen
        )
        d = decide(ex, WORKFLOW, [r], facts, now, {}, dry_run=global_dry)
        seen.append((now, d))
        inputs.append((ex, facts))
        for a in d.actions:
            outcome = "dry_run" if a.dry_run else step.outcome
            journal[a.key] = PastWrite(
                key=a.key,
                kind=a.kind,
                node_id=a.node_id,
                attempt=a.attempt,
                rule=a.rule,
                outcome=outcome,
                at=now,
                observed=a.observed,
            )
    return Story(seen, journal, inputs)


def segment(key: str) -> str:
    return key.rsplit("/", 2)[1]


@PROPS
@given(rules(), steps, st.booleans())
def test_never_more_than_max_attempts_per_node(
    r: Rule, story: list[Step], global_dry: bool
) -> None:
    result = play(r, story, global_dry=global_dry)
    main = [k for k in result.journal if segment(k) == r.action]
    limit = 1 if r.action == "notify" else r.max_attempts
    assert len(main) <= limit


@PROPS
@given(rules(), steps, st.booleans())
def test_fallback_fires_exactly_once(r: Rule, story: list[Step], global_dry: bool) -> None:
    result = play(r, story, global_dry=global_dry)
    fallbacks = [k for k in result.journal if segment(k).startswith("fallback-")]
    assert len(fallbacks) <= 1
    # Once the fallback has a final outcome nothing more is ever done.
    done_at = None
    for (now, d), step in zip(result.decisions, story, strict=True):
        if done_at is not None:
            assert d.actions == ()
        for a in d.actions:
            outcome = "dry_run" if a.dry_run else step.outcome
            if a.fallback and outcome not in RETRYABLE and done_at is None:
                done_at = now


@PROPS
@given(rules(), steps, st.booleans())
def test_recheck_is_never_in_the_past(r: Rule, story: list[Step], global_dry: bool) -> None:
    for now, d in play(r, story, global_dry=global_dry).decisions:
        assert d.recheck_at is None or d.recheck_at > now
        assert len(d.actions) <= 1


@PROPS
@given(
    rules(),
    steps,
    st.sampled_from([Status.SUCCESS, Status.CANCEL, Status.APPROVAL_FAILED]),
)
def test_nothing_is_done_to_a_finished_execution(
    r: Rule, story: list[Step], status: Status
) -> None:
    played = play(r, story, state="failed", global_dry=False)
    facts = ExecutionFacts(execution_id="ex-1", writes=tuple(played.journal.values()))
    for now, _ in played.decisions:
        d = decide(execution(status=status), WORKFLOW, [r], facts, now, {})
        assert d.actions == ()
        assert d.recheck_at is None
        assert d.unhandled_node is None


@PROPS
@given(rules(), steps, st.booleans())
def test_same_input_same_output(r: Rule, story: list[Step], global_dry: bool) -> None:
    first = play(r, story, global_dry=global_dry)
    second = play(replace(r), story, global_dry=global_dry)
    assert first.decisions == second.decisions
    assert first.journal == second.journal


@PROPS
@given(
    rules(),
    steps,
    st.booleans(),
    st.integers(0, 3600),
    st.sampled_from([o for o in OUTCOMES if o not in RETRYABLE]),
)
def test_observing_the_same_state_twice_adds_no_action(
    r: Rule, story: list[Step], global_dry: bool, later: int, outcome: str
) -> None:
    """Whenever decide acted, the same state again (at any later time) gets no new action
    while that write is pending or has a final outcome."""
    played = play(r, story, global_dry=global_dry)
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
                outcome="dry_run" if a.dry_run else outcome,
                at=now,
                observed=a.observed,
            )
            for a in d.actions
        ]
        keys = {w.key for w in fed}
        writes = (*(w for w in facts.writes if w.key not in keys), *fed)
        again = decide(
            ex,
            WORKFLOW,
            [r],
            replace(facts, writes=writes),
            now + timedelta(seconds=later),
            {},
            dry_run=global_dry,
        )
        assert again.actions == ()


@PROPS
@given(rules(), steps, steps)
def test_dry_run_then_real_never_reuses_a_dry_run_key(
    r: Rule, dry_story: list[Step], real_story: list[Step]
) -> None:
    """Switching a daemon from dry-run to real mode: the executor treats a key journaled as
    ``dry_run`` as a duplicate, so real actions must use keys the dry run did not."""
    dry = play(r, dry_story, global_dry=True)
    journal = dict(dry.journal)
    now = T0 + timedelta(days=1)
    run = 100
    for step in real_story:
        now += timedelta(seconds=step.seconds)
        run += int(step.rerun)
        ex = execution(state=r.status[0], run=run)
        facts = ExecutionFacts(execution_id="ex-1", writes=tuple(journal.values()))
        for a in decide(ex, WORKFLOW, [r], facts, now, {}).actions:
            previous = journal.get(a.key)
            assert previous is None or previous.outcome != "dry_run"
            journal[a.key] = PastWrite(
                key=a.key,
                kind=a.kind,
                node_id=a.node_id,
                attempt=a.attempt,
                rule=a.rule,
                outcome="dry_run" if a.dry_run else step.outcome,
                at=now,
                observed=a.observed,
            )


@PROPS
@given(rules(), steps, st.booleans())
def test_an_execution_reported_fail_gets_at_most_one_write_per_node(
    r: Rule, story: list[Step], global_dry: bool
) -> None:
    """Whatever the outcomes (rejected, lost, resent), one key per node, ever: "try once"
    (a retryable outcome resends the same key, never a second attempt)."""
    played = play(r, story, global_dry=global_dry, state="failed", status=Status.FAIL)
    assert len(played.journal) <= 1
    for key in played.journal:
        assert key.endswith("/1")

"""Scenario tests of ``decide``: one stopped node, the journal's facts, and time moving on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.calendar import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec
from daemon.kernel.model import Status
from daemon.policy import RECHECK_SOON, decide, observed
from tests.support.decisions import T0, WORKFLOW, execution, facts, rule, written

S = timedelta(seconds=1)


def test_finished_execution_gets_nothing() -> None:
    for status in (Status.SUCCESS, Status.CANCEL, Status.APPROVAL_FAILED):
        d = decide(execution(status=status), WORKFLOW, [rule()], facts(), T0)
        assert d.actions == ()
        assert d.recheck_at is None
        assert d.unhandled_node is None


def test_execution_reported_fail_gets_one_try_then_is_left_for_a_human() -> None:
    """The other reading of the API: a failed node's execution reported ``fail``. A rule
    tries its action once; AOM.31001418 (journaled ``rejected``) is never retried."""
    ex = execution(status=Status.FAIL)
    (a,) = decide(ex, WORKFLOW, [rule()], facts(), T0).actions
    assert (a.kind, a.key) == ("restart", "exec/ex-1/patch/restart/1")
    d = decide(ex, WORKFLOW, [rule()], facts(written(a, "rejected")), T0 + 60 * S)
    assert d.actions == ()
    assert d.cannot_act == (
        (
            "patch",
            "execution ended fail at node apply-patch (patch); restart was rejected by the API "
            "(not allowed here); never retried; left for a human",
        ),
    )
    assert d.recheck_at is None
    # a lost reply is resolved by reading, never sent again meanwhile
    d = decide(ex, WORKFLOW, [rule()], facts(written(a, "unknown")), T0 + 60 * S)
    assert (d.actions, d.pending_keys) == ((), (a.key,))
    # tried and applied, and the execution ended fail again: one try is all
    d = decide(ex, WORKFLOW, [rule()], facts(written(a, "applied")), T0 + 600 * S)
    assert d.actions == ()
    assert "restart was tried once (applied)" in d.cannot_act[0][1]
    # no rule for it: said once by the engine, nothing sent
    d = decide(ex, WORKFLOW, [rule(action="continue", match={"status": "paused"})], facts(), T0)
    assert d.actions == ()
    assert d.cannot_act == (
        (
            "patch",
            "execution ended fail at node apply-patch (patch); no rule acts on it now; "
            "left for a human",
        ),
    )


def test_approvals_and_unknown_statuses_are_named_never_acted_on() -> None:
    ex = execution(state="paused")
    nodes = (
        ex.nodes[0],
        replace(ex.nodes[1], node_id="approve", status=Status.WAIT_APPROVAL),
        replace(ex.nodes[1], node_id="odd", status=Status.UNKNOWN, raw_status="suspended"),
    )
    d = decide(
        replace(ex, nodes=nodes, status=Status.WAIT_APPROVAL), WORKFLOW, [rule()], facts(), T0
    )
    assert d.actions == ()
    assert d.cannot_act == (
        (
            "approve",
            "node approve waits for an approval, which is given in the console "
            "(no documented operation approves)",
        ),
        (
            "odd",
            "node odd reports status 'suspended', which aomd does not know; it does not act on it",
        ),
    )
    ended = replace(
        ex, nodes=(replace(nodes[1], status=Status.APPROVAL_FAILED),), status=Status.APPROVAL_FAILED
    )
    d = decide(ended, WORKFLOW, [rule()], facts(), T0)
    assert d.actions == ()
    assert [n for n, _ in d.cannot_act] == ["approve"]
    weird = replace(ex, status=Status.UNKNOWN, raw_status="frozen")
    assert decide(weird, WORKFLOW, [rule()], facts(), T0).cannot_act == (
        ("", "execution status 'frozen' is not one aomd knows; it does not act on it"),
    )


def test_running_execution_without_running_rules_gets_nothing() -> None:
    d = decide(execution(state="running"), WORKFLOW, [rule()], facts(), T0)
    assert d.actions == ()
    assert d.unhandled_node is None


def test_retry_with_backoff_then_fallback_skip() -> None:
    r = rule(
        match={"node": {"name": "apply-*"}, "status": "failed"},
        max_attempts=3,
        backoff={"initial": "30s", "factor": 2, "max": "10m"},
        fallback="skip",
    )
    now = T0 + timedelta(minutes=5)
    ex = execution(run=0)
    d = decide(ex, WORKFLOW, [r], facts(), now)
    (a,) = d.actions
    assert (a.kind, a.node_id, a.attempt, a.rule) == ("restart", "patch", 1, "r")
    assert a.key == "exec/ex-1/patch/restart/1"
    assert a.observed == observed(ex, "patch")
    assert a.reason == "node apply-patch (patch) failed (attempt 1 of 3); restart"
    assert not a.dry_run
    assert not a.notify
    assert d.recheck_at == now + RECHECK_SOON
    w1 = written(a, at=now)

    # Same state again: the restart has not shown yet -> nothing, look again soon.
    d = decide(ex, WORKFLOW, [r], facts(w1), now + 5 * S)
    assert d.actions == ()
    assert d.recheck_at == now + 5 * S + RECHECK_SOON

    # The node ran again and failed again: attempt 2 only after 30 s of backoff.
    ex2 = execution(run=1)
    d = decide(ex2, WORKFLOW, [r], facts(w1), now + 10 * S)
    assert d.actions == ()
    assert d.recheck_at == now + 30 * S
    d = decide(ex2, WORKFLOW, [r], facts(w1), now + 30 * S)
    (a2,) = d.actions
    assert a2.key == "exec/ex-1/patch/restart/2"
    assert a2.reason == (
        "node apply-patch (patch) failed (attempt 2 of 3), backoff 30s elapsed; restart"
    )
    w2 = written(a2, at=now + 30 * S)

    # Third attempt waits 60 s (30 s * 2).
    ex3 = execution(run=2)
    d = decide(ex3, WORKFLOW, [r], facts(w1, w2), now + 60 * S)
    assert d.recheck_at == now + 90 * S
    (a3,) = decide(ex3, WORKFLOW, [r], facts(w1, w2), now + 90 * S).actions
    assert a3.attempt == 3
    w3 = written(a3, at=now + 90 * S)

    # Attempts exhausted: the fallback skips the node, exactly once.
    ex4 = execution(run=3)
    (fb,) = decide(ex4, WORKFLOW, [r], facts(w1, w2, w3), now + 100 * S).actions
    assert (fb.kind, fb.key, fb.fallback) == ("skip", "exec/ex-1/patch/fallback-skip/1", True)
    assert "3 of 3 attempts used" in fb.reason
    wf = written(fb, at=now + 100 * S)
    for later in (ex4, execution(run=4)):
        d = decide(later, WORKFLOW, [r], facts(w1, w2, w3, wf), now + 200 * S)
        assert d.actions == ()
        assert d.recheck_at is None


def test_backoff_is_capped_and_jitter_is_deterministic() -> None:
    r = rule(max_attempts=5, backoff={"initial": "1m", "factor": 10, "max": "5m", "jitter": 0.5})
    first = decide(execution(run=0), WORKFLOW, [r], facts(), T0).actions[0]
    w1 = written(first, at=T0)
    w2 = written(
        decide(execution(run=1), WORKFLOW, [r], facts(w1), T0 + timedelta(hours=1)).actions[0],
        at=T0 + timedelta(hours=1),
    )
    d = decide(execution(run=2), WORKFLOW, [r], facts(w1, w2), T0 + timedelta(hours=1, seconds=1))
    assert d.recheck_at is not None
    wait = d.recheck_at - (T0 + timedelta(hours=1))
    assert timedelta(minutes=5) <= wait <= timedelta(minutes=7, seconds=30)
    again = decide(
        execution(run=2), WORKFLOW, [r], facts(w1, w2), T0 + timedelta(hours=1, seconds=1)
    )
    assert again == d


def test_retryable_outcome_resends_the_same_key_after_initial_backoff() -> None:
    r = rule(backoff={"initial": "20s"})
    (a,) = decide(execution(), WORKFLOW, [r], facts(), T0).actions
    w = written(a, outcome="failed", at=T0)
    d = decide(execution(), WORKFLOW, [r], facts(w), T0 + 5 * S)
    assert d.actions == ()
    assert d.recheck_at == T0 + 20 * S
    (again,) = decide(execution(), WORKFLOW, [r], facts(w), T0 + 20 * S).actions
    assert again.key == a.key
    assert "resending after outcome failed" in again.reason


def test_pending_write_on_unchanged_state_is_listed_for_resolution() -> None:
    (a,) = decide(execution(), WORKFLOW, [rule()], facts(), T0).actions
    d = decide(execution(), WORKFLOW, [rule()], facts(written(a, "pending")), T0 + S)
    assert d.actions == ()
    assert d.pending_keys == (a.key,)


def test_continue_pause_after_delay() -> None:
    r = rule(action="continue", match={"status": "paused"}, delay="10m")
    ex = execution(state="paused", node_id="approve")
    # Never seen before: the engine records `saw` now; look again when the delay is over.
    d = decide(ex, WORKFLOW, [r], facts(), T0)
    assert d.actions == ()
    assert d.recheck_at == T0 + timedelta(minutes=10)
    seen = {"approve": T0}
    d = decide(ex, WORKFLOW, [r], facts(first_seen=seen), T0 + timedelta(minutes=9))
    assert d.actions == ()
    assert d.recheck_at == T0 + timedelta(minutes=10)
    (a,) = decide(ex, WORKFLOW, [r], facts(first_seen=seen), T0 + timedelta(minutes=10)).actions
    assert a.kind == "continue"
    assert a.key == "exec/ex-1/approve/continue/1"
    assert a.reason == (
        "node approve paused (attempt 1 of 3), paused for 10m (delay 10m); continue"
    )


def test_deadline_passed_applies_fallback_terminate_and_notifies() -> None:
    r = rule(deadline="2h", fallback="terminate")
    now = T0 + timedelta(hours=2, minutes=5)
    (a,) = decide(execution(), WORKFLOW, [r], facts(), now).actions
    assert (a.kind, a.key) == ("terminate", "exec/ex-1/patch/fallback-terminate/1")
    assert a.notify
    assert "deadline 2h passed (execution age 2h5m, 0 of 3 attempts used)" in a.reason


def test_deadline_bounds_the_backoff_wait() -> None:
    r = rule(deadline="10m", backoff={"initial": "1h", "max": "1h"}, fallback="terminate")
    (a,) = decide(execution(run=0), WORKFLOW, [r], facts(), T0 + timedelta(minutes=2)).actions
    w = written(a, at=T0 + timedelta(minutes=2))
    d = decide(execution(run=1), WORKFLOW, [r], facts(w), T0 + timedelta(minutes=3))
    assert d.actions == ()
    assert d.recheck_at == T0 + timedelta(minutes=10)


def test_leave_fallback_is_one_notification() -> None:
    r = rule(max_attempts=1)
    (a,) = decide(execution(run=0), WORKFLOW, [r], facts(), T0).actions
    w = written(a, at=T0)
    (n,) = decide(execution(run=1), WORKFLOW, [r], facts(w), T0 + timedelta(minutes=1)).actions
    assert (n.kind, n.key, n.notify) == ("notify", "exec/ex-1/patch/fallback-leave/1", True)
    assert n.reason.endswith("fallback: leave it for a human")
    d = decide(
        execution(run=1), WORKFLOW, [r], facts(w, written(n, at=T0)), T0 + timedelta(hours=1)
    )
    assert d.actions == ()
    assert d.recheck_at is None


def test_notify_rule_notifies_once() -> None:
    r = rule(action="notify")
    (a,) = decide(execution(), WORKFLOW, [r], facts(), T0).actions
    assert (a.kind, a.notify) == ("notify", True)
    d = decide(execution(run=5), WORKFLOW, [r], facts(written(a)), T0 + timedelta(hours=1))
    assert d.actions == ()
    assert d.unhandled_node is None


def test_rule_notify_settings() -> None:
    url = "https://hooks.example.com/x"
    (a,) = decide(execution(), WORKFLOW, [rule(notify=url)], facts(), T0).actions
    assert (a.notify, a.webhook) == (True, url)
    (b,) = decide(
        execution(), WORKFLOW, [rule(notify=False, action="terminate")], facts(), T0
    ).actions
    assert not b.notify
    (c,) = decide(execution(), WORKFLOW, [rule(notify=True)], facts(), T0).actions
    assert (c.notify, c.webhook) == (True, None)


def test_calendar_gate_waits_for_the_next_transition() -> None:
    cals = build_calendars(
        {
            "work": CalendarSpec.model_validate(
                {"recurring": [{"cron": "0 9 * * *", "duration": "8h"}]}
            )
        },
        Path(),
    )
    inside = rule(calendar={"inside": "work"})
    outside = rule(calendar={"outside": "work"})
    evening = T0.replace(hour=20)
    d = decide(execution(), WORKFLOW, [inside], facts(), evening, cals)
    assert d.actions == ()
    assert d.recheck_at == (T0 + timedelta(days=1)).replace(hour=9)
    assert "inside calendar 'work'" in d.reasons[0]
    assert decide(execution(), WORKFLOW, [outside], facts(), evening, cals).actions
    assert decide(execution(), WORKFLOW, [inside], facts(), T0.replace(hour=10), cals).actions
    d = decide(execution(), WORKFLOW, [outside], facts(), T0.replace(hour=10), cals)
    assert d.recheck_at == T0.replace(hour=17)
    # An unknown calendar (impossible after validation) closes the gate, never crashes.
    assert decide(execution(), WORKFLOW, [inside], facts(), evening, {}).actions == ()


def test_unmatched_stop_is_unhandled() -> None:
    r = rule(match={"node": {"id": "other"}})
    d = decide(execution(state="paused", node_id="approve"), WORKFLOW, [r], facts(), T0)
    assert d.actions == ()
    assert d.unhandled_node == "approve"
    assert d.unhandled
    assert d.reasons == ("node approve paused: no rule matches",)


def test_first_matching_rule_wins_in_order() -> None:
    a = rule(name="a", action="skip", match={"workflow": {"name": "patch-*"}})
    b = rule(name="b", action="restart")
    assert decide(execution(), WORKFLOW, [a, b], facts(), T0).actions[0].rule == "a"
    assert decide(execution(), WORKFLOW, [b, a], facts(), T0).actions[0].rule == "b"


def test_match_criteria() -> None:
    ex = execution(output={"stderr": "Connection reset by peer", "code": 7})
    hits = [
        {"workflow": {"ids": ["wf-patch"]}},
        {"workflow": {"name": "patch-*", "tags": {"env": "prod*"}}},
        {"node": {"id": "patch", "name": "apply-*"}},
        {"status": ["failed"]},
        {"output_regex": "(?i)connection reset"},
        {"output_regex": "(?m)^7$"},
        {"max_age": "1h"},
    ]
    misses = [
        {"workflow": {"ids": ["other"]}},
        {"workflow": {"name": "backup-*"}},
        {"workflow": {"tags": {"team": "db"}}},
        {"workflow": {"tags": {"missing": "*"}}},
        {"node": {"name": "pre*"}},
        {"output_regex": "disk full"},
        {"max_age": "1m"},
    ]
    now = T0 + timedelta(minutes=5)
    for match in hits:
        assert decide(ex, WORKFLOW, [rule(match=match)], facts(), now).actions, match
    for match in misses:
        d = decide(ex, WORKFLOW, [rule(match=match)], facts(), now)
        assert d.unhandled_node == "patch", match
    paused_only = rule(action="terminate", match={"status": "paused"})
    assert decide(ex, WORKFLOW, [paused_only], facts(), now).unhandled
    # Without the workflow definition, name/tag criteria cannot match (ids still can).
    assert decide(ex, None, [rule(match=hits[0])], facts(), now).actions
    assert decide(ex, None, [rule(match=hits[1])], facts(), now).unhandled


def test_min_age_rechecks_when_it_would_match() -> None:
    r = rule(match={"min_age": "30m"})
    d = decide(execution(), WORKFLOW, [r], facts(), T0 + timedelta(minutes=10))
    assert d.unhandled_node == "patch"
    assert d.recheck_at == T0 + timedelta(minutes=30)
    assert decide(execution(), WORKFLOW, [r], facts(), T0 + timedelta(minutes=30)).actions


def test_terminate_overlong_running_execution() -> None:
    r = rule(action="terminate", match={"status": "running", "min_age": "2h"})
    d = decide(execution(state="running"), WORKFLOW, [r], facts(), T0 + timedelta(hours=1))
    assert d.actions == ()
    assert d.unhandled_node is None
    assert d.recheck_at == T0 + timedelta(hours=2)
    (a,) = decide(
        execution(state="running"), WORKFLOW, [r], facts(), T0 + timedelta(hours=2)
    ).actions
    assert (a.kind, a.key) == ("terminate", "exec/ex-1/patch/terminate/1")


def test_dry_run_rule_logs_once_then_real_mode_uses_a_fresh_key() -> None:
    dry = rule(dry_run=True)
    (a,) = decide(execution(), WORKFLOW, [dry], facts(), T0).actions
    assert a.dry_run
    w = written(a, outcome="dry_run", at=T0)
    # Dry-run mode: the simulated write counts, so it is not repeated on every poll.
    assert decide(execution(), WORKFLOW, [dry], facts(w), T0 + timedelta(hours=1)).actions == ()
    assert decide(execution(), WORKFLOW, [rule()], facts(w), T0, dry_run=True).actions == ()
    # Real mode: the dry run did nothing, act now, but under a key the journal has not seen.
    (real,) = decide(execution(), WORKFLOW, [rule()], facts(w), T0 + timedelta(hours=1)).actions
    assert not real.dry_run
    assert real.key == "exec/ex-1/patch/restart/2"
    assert "(attempt 1 of 3)" in real.reason


def test_global_dry_run_marks_actions() -> None:
    (a,) = decide(execution(), WORKFLOW, [rule()], facts(), T0, dry_run=True).actions
    assert a.dry_run


def test_status_defaults_follow_the_action() -> None:
    assert rule(action="restart").status == ("failed",)
    assert rule(action="skip").status == ("failed",)
    assert rule(action="continue").status == ("paused",)
    assert rule(action="terminate").status == ("failed", "paused")
    assert rule(action="notify", match={"node": {"id": "x"}}).status == ("failed", "paused")


def test_in_scope_uses_workflow_criteria_only() -> None:
    from dataclasses import replace

    from daemon.policy import in_scope

    assert in_scope([rule(match={"workflow": {"name": "patch-*"}})], WORKFLOW)
    assert in_scope([rule(match={"node": {"name": "nothing-like-it"}})], WORKFLOW)
    assert not in_scope([rule(match={"workflow": {"tags": {"team": "db"}}})], WORKFLOW)
    assert not in_scope([], WORKFLOW)
    other = replace(WORKFLOW, id="x", name="backup")
    assert not in_scope([rule(match={"workflow": {"ids": ["wf-patch"]}})], other)


def test_backoff_counts_from_the_new_failure_not_from_the_last_write() -> None:
    r = rule(max_attempts=3, backoff={"initial": "30s", "factor": 2, "max": "10m"})
    now = T0 + timedelta(minutes=5)
    (a1,) = decide(execution(run=0), WORKFLOW, [r], facts(), now).actions
    w1 = written(a1, at=now)
    # The restarted node ran for 15 minutes, much longer than the backoff, then failed.
    long_run = execution(run=15 * 60)
    failed_at = datetime.fromtimestamp(long_run.nodes[-1].end_time / 1000, UTC)  # type: ignore[operator]
    d = decide(long_run, WORKFLOW, [r], facts(w1), failed_at + S)
    assert d.actions == ()
    assert d.recheck_at == failed_at + 30 * S
    (a2,) = decide(long_run, WORKFLOW, [r], facts(w1), failed_at + 30 * S).actions
    assert a2.attempt == 2


def test_out_of_range_times_are_unknown_not_a_crash() -> None:
    """A begin/end time no datetime can hold (a malformed reply: year 10**7, -10**17 ms)
    reads as unknown; before, ``fromtimestamp`` raised on every poll, so the stopped node
    was never acted on and each poll logged a traceback."""
    import dataclasses

    r = rule(match={"status": "failed", "min_age": "1m"}, max_attempts=3)
    for bad in (10**17, -(10**17)):
        ex = execution()
        node = dataclasses.replace(ex.nodes[1], end_time=bad)
        ex = dataclasses.replace(ex, begin_time=bad, nodes=(ex.nodes[0], node))
        d = decide(ex, WORKFLOW, [r], facts(), T0)  # min_age needs the age: not matched
        assert d.actions == ()
        r2 = rule(max_attempts=3)
        first = decide(ex, WORKFLOW, [r2], facts(), T0)
        assert [a.kind for a in first.actions] == ["restart"]
        # an earlier attempt on another state: the backoff base reads the node's end time
        past = dataclasses.replace(written(first.actions[0]), observed="older")
        again = decide(ex, WORKFLOW, [r2], facts(past), T0 + S * 600)
        assert again.actions or again.recheck_at is not None


def test_nodes_match_by_category_glob() -> None:
    nodes = tuple(replace(n, category="script") if n.id == "patch" else n for n in WORKFLOW.nodes)
    wf = replace(WORKFLOW, nodes=nodes)
    ex = execution()
    assert decide(ex, wf, [rule(match={"node": {"category": "scr*"}})], facts(), T0).actions
    miss = decide(ex, wf, [rule(match={"node": {"category": "job"}})], facts(), T0)
    assert (miss.actions, miss.unhandled_node) == ((), "patch")
    # unknown workflow (or no category): a category rule cannot match
    assert not decide(ex, None, [rule(match={"node": {"category": "*"}})], facts(), T0).actions
    assert not decide(ex, WORKFLOW, [rule(match={"node": {"category": "*"}})], facts(), T0).actions


def test_delay_and_backoff_can_count_working_time_only() -> None:
    """A pause first seen Friday 17:00 Berlin with ``delay: {duration: 2h, counting:
    work}`` is continued Monday 10:00, not Friday 19:00."""
    cals = build_calendars(
        {
            "work": CalendarSpec.model_validate(
                {
                    "timezone": "Europe/Berlin",
                    "recurring": [{"cron": "0 9 * * mon-fri", "duration": "9h"}],
                }
            )
        },
        Path(),
    )
    friday_5pm = datetime(2026, 1, 9, 16, tzinfo=UTC)  # 17:00 in Berlin
    monday_10am = datetime(2026, 1, 12, 9, tzinfo=UTC)
    r = rule(
        action="continue",
        match={"status": "paused"},
        delay={"duration": "2h", "counting": "work"},
    )
    ex = execution(state="paused", begin=friday_5pm - 60 * S)
    seen = facts(first_seen={"patch": friday_5pm})
    d = decide(ex, WORKFLOW, [r], seen, friday_5pm + timedelta(hours=3), cals)
    assert d.actions == ()
    assert d.recheck_at == monday_10am
    assert "delay 2h counted in calendar 'work'" in d.reasons[0]
    (a,) = decide(ex, WORKFLOW, [r], seen, monday_10am, cals).actions
    assert a.kind == "continue"
    # wall time, as before, without counting
    plain = rule(action="continue", match={"status": "paused"}, delay="2h")
    assert decide(ex, WORKFLOW, [plain], seen, friday_5pm + 2 * timedelta(hours=1), cals).actions
    # backoff counted the same way: the second restart waits for Monday's working time
    rb = rule(backoff={"initial": "1h", "factor": 1, "max": "1h", "counting": "work"})
    failed = execution(begin=friday_5pm - 60 * S)
    (a1,) = decide(failed, WORKFLOW, [rb], facts(), friday_5pm, cals).actions
    again = execution(begin=friday_5pm - 60 * S, run=5)
    d = decide(
        again,
        WORKFLOW,
        [rb],
        facts(written(a1, at=friday_5pm)),
        friday_5pm + 2 * timedelta(hours=1),
        cals,
    )
    assert d.actions == ()
    # the node failed again at 17:00:06: 59m54s counted on Friday, 6 s on Monday
    assert d.recheck_at == datetime(2026, 1, 12, 8, 0, 6, tzinfo=UTC)


def test_not_finished_by_a_clock_time() -> None:
    """Control-M's "not finished by": an execution still running at the first 06:00
    Berlin after it began is reported; one that began after 06:00 gets until tomorrow."""
    r = rule(action="notify", match={"status": "running", "not_finished_by": "06:00 Europe/Berlin"})
    night = datetime(2026, 1, 7, 0, tzinfo=UTC)  # 01:00 in Berlin
    six = datetime(2026, 1, 7, 5, tzinfo=UTC)  # 06:00 in Berlin
    ex = execution(state="running", begin=night)
    early = decide(ex, WORKFLOW, [r], facts(), six - S)
    assert (early.actions, early.recheck_at) == ((), six)
    (a,) = decide(ex, WORKFLOW, [r], facts(), six).actions
    assert a.kind == "notify"
    late = execution(state="running", begin=six + 60 * S)
    d = decide(late, WORKFLOW, [r], facts(), six + 3600 * S)
    assert (d.actions, d.recheck_at) == ((), six + timedelta(days=1))
    rule(action="terminate", match={"status": "running", "not_finished_by": "23:59"})  # UTC
    for bad in ("6 o'clock", "25:00 UTC", "06:00 Mars/Olympus"):
        with pytest.raises(ValueError, match="not_finished_by"):
            rule(action="notify", match={"status": "running", "not_finished_by": bad})


def test_a_later_matching_rules_gate_holds_the_first_rules_action() -> None:
    """Deny beats allow for execution rules too: the first match picks the action, but a
    later matching rule's closed calendar gate holds it until the gate opens."""
    cals = build_calendars(
        {
            "freeze": CalendarSpec.model_validate(
                {"recurring": [{"cron": "0 9 * * *", "duration": "8h"}]}
            )
        },
        Path(),
    )
    first = rule(name="retry-all", action="restart")
    freeze = rule(name="never-in-freeze", action="notify", calendar={"outside": "freeze"})
    unrelated = rule(
        name="other-wf", calendar={"outside": "freeze"}, match={"workflow": {"name": "zzz"}}
    )
    noon = T0.replace(hour=12)
    d = decide(execution(), WORKFLOW, [first, freeze], facts(), noon, cals)
    assert d.actions == ()
    assert d.rule == "retry-all"
    assert "gate of rule 'never-in-freeze'" in d.reasons[0]
    assert d.recheck_at == T0.replace(hour=17)
    # A gated rule that does not match the stop does not hold it; outside the window the
    # first rule acts as before.
    assert decide(execution(), WORKFLOW, [first, unrelated], facts(), noon, cals).actions
    evening = T0.replace(hour=20)
    [act] = decide(execution(), WORKFLOW, [first, freeze], facts(), evening, cals).actions
    assert act.rule == "retry-all"

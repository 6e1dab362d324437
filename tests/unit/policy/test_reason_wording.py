"""Reasons read right (issue #15): one terminate ends an execution, so its first send
names no attempt count; restarts still count theirs."""

from __future__ import annotations

from datetime import timedelta

from daemon.policy import decide
from tests.support.decisions import T0, WORKFLOW, execution, facts, rule


def test_a_first_terminate_says_no_attempt_count() -> None:
    r = rule(action="terminate", match={"status": "running", "min_age": "2h"})
    (a,) = decide(
        execution(state="running"), WORKFLOW, [r], facts(), T0 + timedelta(hours=2)
    ).actions
    assert a.reason == "node apply-patch (patch) running; terminate the execution"


def test_a_restart_still_counts_its_attempt() -> None:
    (first,) = decide(execution(), WORKFLOW, [rule()], facts(), T0).actions
    assert first.reason == "node apply-patch (patch) failed (attempt 1 of 3); restart"

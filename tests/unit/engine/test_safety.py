from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.engine.safety import WINDOW_SECONDS, BlastRadius, CircuitBreaker


def test_blast_radius_global_cap_and_resume() -> None:
    br = BlastRadius(per_minute=3, per_workflow_per_minute=10)
    for i in range(3):
        assert br.check(f"wf{i}", now=float(i)) is None
        br.record(f"wf{i}", now=float(i))
    refusal = br.check("wf9", now=3.0)
    assert refusal is not None
    assert "global cap" in refusal.reason
    assert refusal.retry_at == WINDOW_SECONDS
    assert br.tripped(3.0)
    # once the first write leaves the window, writing resumes on its own
    assert br.check("wf9", now=WINDOW_SECONDS + 0.1) is None
    assert not br.tripped(WINDOW_SECONDS + 0.1)


def test_blast_radius_per_workflow_cap() -> None:
    br = BlastRadius(per_minute=100, per_workflow_per_minute=2)
    br.record("a", 0.0)
    br.record("a", 1.0)
    refusal = br.check("a", 2.0)
    assert refusal is not None
    assert "workflow a" in refusal.reason
    assert br.check("b", 2.0) is None


@settings(max_examples=200)
@given(
    times=st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), max_size=200),
    cap=st.integers(min_value=1, max_value=20),
)
def test_blast_radius_never_exceeds_cap_in_any_window(times: list[float], cap: int) -> None:
    br = BlastRadius(per_minute=cap, per_workflow_per_minute=cap)
    accepted: list[float] = []
    for t in sorted(times):
        if br.check("wf", t) is None:
            br.record("wf", t)
            accepted.append(t)
    for t in accepted:
        in_window = [u for u in accepted if t - WINDOW_SECONDS < u <= t]
        assert len(in_window) <= cap


def test_breaker_opens_on_error_spike_and_half_opens() -> None:
    cb = CircuitBreaker(error_ratio=0.5, min_calls=4, cooldown=30.0)
    for t in range(3):
        cb.record(ok=False, now=float(t))
    assert cb.check(3.0) is None  # below min_calls
    cb.record(ok=False, now=3.0)
    assert cb.is_open(3.0)
    assert cb.check(10.0) is not None
    assert cb.check(33.1) is None  # cooldown passed: one trial allowed
    cb.record(ok=True, now=33.2)
    assert not cb.is_open(33.3)


def test_breaker_trial_failure_reopens() -> None:
    cb = CircuitBreaker(error_ratio=0.5, min_calls=2, cooldown=10.0)
    cb.record(ok=False, now=0.0)
    cb.record(ok=False, now=0.5)
    assert cb.is_open(1.0)
    cb.record(ok=False, now=11.0)
    assert cb.is_open(12.0)
    assert not cb.is_open(21.5)


def test_breaker_stays_closed_when_healthy() -> None:
    cb = CircuitBreaker(error_ratio=0.5, min_calls=4, cooldown=30.0)
    for t in range(50):
        cb.record(ok=t % 5 != 0, now=float(t))
    assert cb.check(50.0) is None


def test_blast_radius_forgets_idle_workflows_and_release_gives_a_slot_back() -> None:
    br = BlastRadius(per_minute=2, per_workflow_per_minute=2)
    for i in range(50):
        br.record(f"wf{i}", float(i))
    assert br.check("wf0", now=500.0) is None  # its window passed: entry dropped
    assert br.tracked_workflows == 49
    br2 = BlastRadius(per_minute=1, per_workflow_per_minute=1)
    br2.record("a", 1.0)
    assert br2.check("b", 1.0) is not None
    br2.release("a", 1.0)
    assert br2.check("b", 1.0) is None
    assert br2.tracked_workflows == 0


def test_breaker_half_open_lets_exactly_one_trial_through() -> None:
    cb = CircuitBreaker(error_ratio=0.5, min_calls=2, cooldown=10.0)
    cb.record(False, 0.0)
    cb.record(False, 1.0)
    assert cb.check(5.0) is not None  # open
    assert cb.check(11.0) is None  # the trial
    refusal = cb.check(11.5)
    assert refusal is not None
    assert "half-open" in refusal.reason
    cb.release_trial()  # the trial sent nothing after all
    assert cb.check(11.6) is None
    cb.record(True, 12.0)  # the trial succeeded: closed
    assert cb.check(12.1) is None
    assert cb.check(12.2) is None
    assert not cb.is_open(12.2)


def test_breaker_trial_never_reported_is_given_up_after_a_cooldown() -> None:
    cb = CircuitBreaker(error_ratio=0.5, min_calls=1, cooldown=10.0)
    cb.record(False, 0.0)
    assert cb.check(10.0) is None
    assert cb.check(15.0) is not None
    assert cb.check(20.0) is None

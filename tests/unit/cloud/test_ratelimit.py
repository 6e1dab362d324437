"""Token bucket: pure reservations under a fake clock, and the async wrapper."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.cloud.ratelimit import BucketState, TokenBucket, reserve


def test_burst_then_steady_rate() -> None:
    state = BucketState(tokens=3, stamp=0.0)
    waits = [reserve(state, 0.0, rate=2.0, burst=3) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_refill_is_capped_at_burst() -> None:
    state = BucketState(tokens=0, stamp=0.0)
    assert reserve(state, 100.0, rate=1.0, burst=2) == 0.0
    assert state.tokens == 1.0


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=60),
)
def test_never_exceeds_rate_plus_burst(rate: float, burst: int, gaps: list[float]) -> None:
    """Whatever the arrival pattern, sends by time t are at most burst + rate * t."""
    state = BucketState(tokens=burst, stamp=0.0)
    now = 0.0
    send_times = []
    for gap in gaps:
        now += gap
        send_times.append(now + reserve(state, now, rate, burst))
    send_times.sort()
    for i, t in enumerate(send_times, start=1):
        assert i <= burst + rate * t + 1e-6


async def test_acquire_sleeps_only_when_empty() -> None:
    clock = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(4.0, 2, monotonic=lambda: clock[0], sleep=sleep)
    assert [await bucket.acquire() for _ in range(4)] == [0.0, 0.0, 0.25, 0.25]
    assert slept == [0.25, 0.25]
    assert "rate=4.0" in repr(bucket)

"""Client-side token bucket, one per account.

Why: the API gateway throttles per account, and humans share that quota through the
console. A conservative local limit keeps aomd from ever being the reason someone else
gets a 429. Reservations (the level may go negative) make waiting callers queue fairly
without a lock: each caller learns its own wait from one pure computation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from daemon.kernel.clock import SYSTEM_CLOCK


@dataclass(slots=True)
class BucketState:
    """Tokens available at ``stamp`` (monotonic seconds); negative = reserved ahead."""

    tokens: float
    stamp: float


def reserve(state: BucketState, now: float, rate: float, burst: float) -> float:
    """Take one token at ``now``; return how long the caller must wait before sending.

    Pure apart from updating ``state``: tokens refill at ``rate`` per second up to
    ``burst``; a caller that finds none reserves the next one and waits for it.
    """
    elapsed = now - state.stamp
    if elapsed > 0:
        state.tokens = min(burst, state.tokens + elapsed * rate)
        state.stamp = now
    state.tokens -= 1.0
    if state.tokens >= 0:
        return 0.0
    return -state.tokens / rate


class TokenBucket:
    """``await bucket.acquire()`` before each request (each attempt, retries included)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._state = BucketState(tokens=self.burst, stamp=monotonic())

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst:g})"

    def take(self) -> float:
        """Reserve a token now; the caller must wait the returned seconds before sending.

        Synchronous so the common no-wait case costs no coroutine (hot path).
        """
        return reserve(self._state, self._monotonic(), self.rate, self.burst)

    async def acquire(self) -> float:
        """Wait for a token; returns the seconds waited (0 on the fast path)."""
        wait = self.take()
        if wait > 0:
            await self._sleep(wait)
        return wait

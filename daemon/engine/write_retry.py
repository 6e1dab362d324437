"""When a write that failed without effect is sent again: seconds later, not next pass.

A ``failed`` write (429, 5xx, a connection refused before anything was sent) changed
nothing, so the same idempotency key may go out again. Left to the level-triggered
passes alone, that next try came ``backoff.initial`` (30 s) later for node operations
and up to ``reconcile_interval`` (300 s) later for trigger changes: a ``disable`` that
failed at the start of a freeze left the cron free to fire for five minutes.

The executor notes each failure here and puts the instant of the prompt retry on the
report (``WriteReport.retry_at``); each writer wakes its own pass at that instant
(the watcher polls the execution again, the trigger and schedule loops arm their waker),
so the retry is decided on fresh state and keeps every exactly-once rule. The budget is
bounded: after ``retries`` prompt retries of one key the writers fall back to their slow
lane (the rule's backoff, the reconcile period) and report the write as stuck.

In memory only, and bounded: a restart forgets the book and the slow lane heals.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

BOOK_SIZE = 4096
"""Keys remembered at most; the least recently failed are forgotten first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRetryPolicy:
    """Exponential backoff with equal jitter: never a zero wait (a 5xx storm must not get
    an instant echo), never in lock-step (many failed writes spread out)."""

    retries: int = 5
    """Prompt retries of one key after its first failure (0 turns prompt retries off)."""
    initial: float = 1.0
    """Seconds (on the daemon's clock) before the first retry, before jitter."""
    factor: float = 2.0
    cap: float = 30.0
    """Largest wait between two tries, before jitter; ``Retry-After`` may ask for more."""
    jitter: float = 0.5
    """Fraction of the wait drawn at random: the wait is in ``[(1 - jitter) w, w]``."""

    def wait(self, failures: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait after the ``failures``-th failure of one key (1-based)."""
        ceiling = min(self.cap, self.initial * self.factor ** (failures - 1))
        wait = ceiling * (1.0 - self.jitter * rand)
        if retry_after is not None:
            # The gateway knows when capacity returns: never earlier than it asked.
            wait = max(wait, retry_after)
        return wait


class RetryBook:
    """Failures per key since its last success, and when each may go out again."""

    def __init__(self, policy: WriteRetryPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self.rand = rand
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._due: dict[str, datetime] = {}
        self.retries_scheduled = 0
        """Prompt retries handed out so far (a metric)."""
        self.exhausted = 0
        """Keys whose prompt budget ran out (a metric)."""

    def failed(self, key: str, now: datetime, retry_after: float | None) -> datetime | None:
        """Note one more failure of ``key``; the instant to retry it, or None when its
        prompt budget is spent (the slow lane takes over)."""
        failures = self._failures.pop(key, 0) + 1
        self._failures[key] = failures
        while len(self._failures) > BOOK_SIZE:
            old, _ = self._failures.popitem(last=False)
            self._due.pop(old, None)
        if failures > self.policy.retries:
            self._due.pop(key, None)
            if failures == self.policy.retries + 1:
                self.exhausted += 1
            return None
        due = now + timedelta(seconds=self.policy.wait(failures, retry_after, self.rand()))
        self._due[key] = due
        self.retries_scheduled += 1
        return due

    def settled(self, key: str) -> None:
        """The key got a final answer (applied, rejected, resolved...): forget it."""
        self._failures.pop(key, None)
        self._due.pop(key, None)

    def due(self, key: str) -> datetime | None:
        """When ``key`` may be retried promptly, if it is within its budget."""
        return self._due.get(key)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        return len(self._failures)

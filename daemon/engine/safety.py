"""Guards that stop aomd from doing damage at scale: a blast-radius cap and a circuit breaker.

Both take the current monotonic time as an argument so they are deterministic under test,
and both say *why* they refused, because a silent refusal at 3 a.m. is worse than none.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a write was not allowed, and when it may be tried again (monotonic seconds)."""

    reason: str
    retry_at: float
    scope: str = "*"
    """What is capped: ``"*"`` (everything) or the workflow id whose own cap was hit."""


class BlastRadius:
    """At most N writes per minute globally and M per workflow (sliding window).

    When the cap is hit aomd stops writing (observing goes on), logs, exposes the state
    as a metric, and resumes on its own once the window has passed.
    """

    def __init__(self, per_minute: int, per_workflow_per_minute: int) -> None:
        self.per_minute = per_minute
        self.per_workflow = per_workflow_per_minute
        self._all: deque[float] = deque()
        self._by_wf: dict[str, deque[float]] = {}

    @staticmethod
    def _trim(q: deque[float], now: float) -> None:
        while q and q[0] <= now - WINDOW_SECONDS:
            q.popleft()

    def check(self, workflow_id: str, now: float) -> Refusal | None:
        self._trim(self._all, now)
        if len(self._all) >= self.per_minute:
            return Refusal(
                f"global cap of {self.per_minute} writes/minute reached",
                self._all[0] + WINDOW_SECONDS,
            )
        q = self._by_wf.get(workflow_id)
        if q is not None:
            self._trim(q, now)
            if not q:
                # A long-running daemon sees many workflows; keep only those with recent
                # writes, or this map grows with every workflow ever written to.
                del self._by_wf[workflow_id]
            elif len(q) >= self.per_workflow:
                return Refusal(
                    f"cap of {self.per_workflow} writes/minute for workflow {workflow_id} reached",
                    q[0] + WINDOW_SECONDS,
                    workflow_id,
                )
        return None

    def record(self, workflow_id: str, now: float) -> None:
        self._all.append(now)
        self._by_wf.setdefault(workflow_id, deque()).append(now)

    def release(self, workflow_id: str, at: float) -> None:
        """Give back a slot taken by ``record(workflow_id, at)`` for a write that was not
        sent after all (the executor reserves before its first await, so concurrent
        writers cannot all pass ``check`` and overshoot the cap)."""
        for q in (self._all, self._by_wf.get(workflow_id)):
            if q is None:
                continue
            for i in range(len(q) - 1, -1, -1):
                if q[i] == at:
                    del q[i]
                    break
        if not self._by_wf.get(workflow_id, True):
            del self._by_wf[workflow_id]

    @property
    def tracked_workflows(self) -> int:
        return len(self._by_wf)

    def tripped(self, now: float) -> bool:
        self._trim(self._all, now)
        return len(self._all) >= self.per_minute


class CircuitBreaker:
    """Opens when the share of failed API calls in the recent window spikes.

    Closed: calls flow. Open: writes refused until ``cooldown`` has passed. Then one
    trial call (half-open): success closes it, failure opens it again. Other writes are
    refused while the trial is out; a trial never reported back (the writer found
    nothing to send) is given up after another ``cooldown`` or by ``release_trial``.
    """

    def __init__(self, error_ratio: float, min_calls: int, cooldown: float) -> None:
        self.error_ratio = error_ratio
        self.min_calls = min_calls
        self.cooldown = cooldown
        self._results: deque[tuple[float, bool]] = deque()
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    def _trim(self, now: float) -> None:
        while self._results and self._results[0][0] <= now - WINDOW_SECONDS:
            self._results.popleft()

    def record(self, ok: bool, now: float) -> None:
        self._trim(now)
        self._results.append((now, ok))
        self._trial_at = None
        if self._opened_at is not None:
            # the half-open trial decides
            if ok and now >= self._opened_at + self.cooldown:
                self._opened_at = None
                self._results.clear()
            elif not ok:
                self._opened_at = now
            return
        failures = sum(1 for _, good in self._results if not good)
        if (
            len(self._results) >= self.min_calls
            and failures / len(self._results) >= self.error_ratio
        ):
            self._opened_at = now

    def is_open(self, now: float) -> bool:
        return self._opened_at is not None and now < self._opened_at + self.cooldown

    def check(self, now: float) -> Refusal | None:
        if self._opened_at is None:
            return None
        if now < self._opened_at + self.cooldown:
            return Refusal(
                "circuit breaker open: API errors spiked", self._opened_at + self.cooldown
            )
        if self._trial_at is not None and now < self._trial_at + self.cooldown:
            return Refusal(
                "circuit breaker half-open: a trial call is out", self._trial_at + self.cooldown
            )
        self._trial_at = now
        return None

    def release_trial(self) -> None:
        """The write allowed as the half-open trial made no call; let the next one try."""
        self._trial_at = None

"""The next cron fire time of every enabled workflow trigger, in one heap.

The emulator's ticker asks "what fired up to now?" many times a second over thousands of
workflows; a heap makes that O(log n) per fire instead of a scan of every workflow.
Disabling or rescheduling a trigger does not remove its entry: the registry skips an
entry whose time no longer matches the workflow's ``next_fire_ms``.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime

from croniter import croniter

__all__ = ["CronHeap"]


class CronHeap:
    """``(fire time ms, workflow id)`` entries, soonest first (ties by workflow id)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def schedule(self, workflow_id: str, cron: str, after_ms: int) -> int:
        """Add the first fire time of ``cron`` (UTC) after ``after_ms`` and return it."""
        start = datetime.fromtimestamp(after_ms / 1000.0, UTC)
        at_ms = int(croniter(cron, start).get_next(datetime).timestamp() * 1000)
        heapq.heappush(self._heap, (at_ms, workflow_id))
        return at_ms

    def pop_due(self, now_ms: int) -> tuple[int, str] | None:
        """The soonest entry if it is due by ``now_ms`` (removed), else None."""
        if self._heap and self._heap[0][0] <= now_ms:
            return heapq.heappop(self._heap)
        return None

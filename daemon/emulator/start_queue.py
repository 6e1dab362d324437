"""Executions whose start is booked for a later emulated time (benchmarks' incidents).

Their ids are drawn when booked, so a benchmark knows what to watch for before the
execution exists; they are created in booking order among equal start times.
"""

from __future__ import annotations

import heapq

__all__ = ["StartQueue"]


class StartQueue:
    """``(start ms, booking number, workflow id, execution id)`` entries, soonest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, str]] = []
        self._booked = 0

    def book(self, at_ms: int, workflow_id: str, execution_id: str) -> None:
        self._booked += 1
        heapq.heappush(self._heap, (at_ms, self._booked, workflow_id, execution_id))

    def pop_due(self, now_ms: int) -> tuple[int, str, str] | None:
        """``(start ms, workflow id, execution id)`` of the soonest booking due by ``now_ms``
        (removed), else None."""
        if self._heap and self._heap[0][0] <= now_ms:
            at_ms, _, workflow_id, execution_id = heapq.heappop(self._heap)
            return at_ms, workflow_id, execution_id
        return None

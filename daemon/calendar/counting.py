"""Durations that count only time inside a calendar ("two working hours").

Pure: a rule's ``delay``, ``deadline`` or backoff may say ``counting: <calendar>``, and
``decide`` asks here when that much calendar time has passed since an instant. A wait that
starts outside the calendar begins counting at its next opening; one that spans a closed
stretch (a night, a weekend, a holiday) pauses across it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from daemon.calendar.calendar import Calendar

__all__ = ["NEVER", "counted_until"]

NEVER = timedelta(days=3650)
"""Stands in for "the calendar never opens again" (within its horizon): far enough to
never act, near enough to stay a valid datetime."""
_MAX_STEPS = 10_000
"""Windows walked at most (a 1-minute-windows calendar over a week); past this the wait
is taken as never ending rather than looping."""


def counted_until(calendar: Calendar | None, start: datetime, duration: timedelta) -> datetime:
    """The instant at which ``duration`` of time inside ``calendar`` has passed since
    ``start``; plain ``start + duration`` without a calendar."""
    if calendar is None:
        return start + duration
    t, left = start, duration
    for _ in range(_MAX_STEPS):
        nxt = calendar.next_transition(t)
        if calendar.active_at(t):
            if nxt is None or nxt - t >= left:
                return t + left
            left -= nxt - t
        elif nxt is None:
            return start + NEVER
        t = nxt
    return start + NEVER

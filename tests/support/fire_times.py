"""Judging scheduled runs from an emulator's state: which minute's fire time a run was.

For oracles of schedules firing every minute (``cron: "* * * * *"``) with a misfire grace
under a minute, so each run belongs to exactly one fire time.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def minute_boundaries(t0: datetime, until: datetime) -> list[datetime]:
    """Every whole minute after ``t0`` up to ``until``."""
    first = (t0 + timedelta(minutes=1)).replace(second=0, microsecond=0)
    out = []
    while first <= until:
        out.append(first)
        first += timedelta(minutes=1)
    return out


def owning_fire(begin_ms: int, fires: list[datetime], grace_s: float) -> datetime | None:
    """The fire time a run belongs to: begun within the grace after it."""
    for fire in fires:
        at = int(fire.timestamp() * 1000)
        if at <= begin_ms < at + grace_s * 1000:
            return fire
    return None

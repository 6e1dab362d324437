"""Schedules: when each one fires in a period, and which fire times a calendar blocks.

``fire_times`` is pure. The engine registers the same times with APScheduler (using
``misfire_grace_seconds`` and ``coalesce`` from the spec) and journals blocked fires as
skipped; ``plan`` lists them. Parsing an ICS schedule reads a file, so callers build a
``ScheduleSources`` once per policy snapshot and pass it in.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import IcsSpec, ShiftSpec
from daemon.calendar.ics_file import load_ics_checked
from daemon.calendar.sources import cron_times, ics_occurrences
from daemon.calendar.window import Window, localize, require_aware

__all__ = [
    "Fire",
    "ScheduleSources",
    "ScheduleTiming",
    "build_schedule_sources",
    "fire_times",
    "next_fire",
    "raw_fires",
]

ScheduleSources = Mapping[str, Any]
"""Schedule name -> parsed iCalendar query, for schedules with ``ics``."""


class ScheduleTiming(Protocol):
    """The part of a schedule this module reads: when it fires and what blocks it.

    The whole schedule, with the action it runs, is ``daemon.policy.schedule_spec.ScheduleSpec``;
    the calendar package sits below the policy package and never needs the action.
    """

    @property
    def name(self) -> str: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def ics(self) -> IcsSpec | None: ...
    @property
    def blocked_by(self) -> Sequence[str]: ...
    @property
    def shift(self) -> ShiftSpec | None: ...


SHIFT_REACH = timedelta(days=31)
"""How far ``shift`` looks for a business day; a fire time with none that near stays put."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fire:
    """One fire time of a schedule."""

    time: datetime
    """Aware UTC."""
    schedule: str
    blocked_by: str | None = None
    """The first calendar of ``blocked_by`` active at ``time``: the run is skipped."""


def build_schedule_sources(
    schedules: Sequence[ScheduleTiming], base_dir: Path, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Parse the iCalendar of every ``ics`` schedule; ``ConfigError`` names the schedule."""
    out: dict[str, Any] = {}
    sink: list[str] = [] if warnings is None else warnings
    for spec in schedules:
        if spec.ics is not None:
            where = f"schedule {spec.name!r}: ics"
            out[spec.name] = load_ics_checked(spec.ics, base_dir, where, sink)
    return out


def _raw_times(
    spec: ScheduleTiming, sources: ScheduleSources, start: datetime, end: datetime
) -> list[datetime]:
    if spec.cron is not None:
        return list(cron_times(spec.cron, ZoneInfo(spec.timezone), start, end))
    query = sources.get(spec.name)
    if query is None:
        raise KeyError(
            f"schedule {spec.name!r} has ics but no parsed source; use build_schedule_sources"
        )
    occurrences = ics_occurrences(
        query, ZoneInfo(spec.timezone), start, end, spec.ics.summary if spec.ics else None
    )
    return sorted({w.start for w in occurrences if start <= w.start < end})


def fire_times(
    schedule: ScheduleTiming,
    calendars: Mapping[str, Calendar],
    start: datetime,
    end: datetime,
    sources: ScheduleSources | None = None,
) -> list[Fire]:
    """Fire times of ``schedule`` in ``[start, end)``, sorted, each marked with the first
    ``blocked_by`` calendar active at that instant (or None)."""
    require_aware(start, end)
    if end <= start:
        return []
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    name = schedule.name
    return [
        Fire(time=t, schedule=name, blocked_by=b)
        for t, b in raw_fires(schedule, calendars, start, end, sources)
    ]


def raw_fires(
    schedule: ScheduleTiming,
    calendars: Mapping[str, Calendar],
    start: datetime,
    end: datetime,
    sources: ScheduleSources | None = None,
) -> list[tuple[datetime, str | None]]:
    """``fire_times`` as plain ``(time, blocked_by)`` pairs, for ``plan``: a year of
    half-hourly fires is tens of thousands of values, and frozen dataclasses cost ~4x a
    tuple to create. Arguments must already be aware UTC with ``start < end``."""
    if schedule.shift is None:
        times = _raw_times(schedule, sources or {}, start, end)
    else:
        times = _shifted_times(schedule, schedule.shift, calendars, sources or {}, start, end)
    if not schedule.blocked_by:
        return [(t, None) for t in times]
    blockers = [_Blocker(name, calendars[name].windows(start, end)) for name in schedule.blocked_by]
    return [(t, _blocker(blockers, t)) for t in times]


def _shifted_times(
    spec: ScheduleTiming,
    shift: ShiftSpec,
    calendars: Mapping[str, Calendar],
    sources: ScheduleSources,
    start: datetime,
    end: datetime,
) -> list[datetime]:
    """Fire times after the shift, in ``[start, end)``: raw times up to ``SHIFT_REACH``
    outside the period are looked at too, since a shift may move them in. Two raw times
    that land on one instant fire once (the key is the shifted time)."""
    cal = calendars[shift.calendar]
    avoid = shift.avoid is not None
    tz = ZoneInfo(spec.timezone)
    step = timedelta(days=1 if shift.to == "next_business_day" else -1)

    def business(t: datetime) -> bool:
        return cal.active_at(t) != avoid

    out: set[datetime] = set()
    for t in _raw_times(spec, sources, start - SHIFT_REACH, end + SHIFT_REACH):
        moved = t
        if not business(t):
            wall = t.astimezone(tz).replace(tzinfo=None)
            for k in range(1, SHIFT_REACH.days + 1):
                candidate = localize(wall + step * k, tz)
                if business(candidate):
                    moved = candidate
                    break
        if start <= moved < end:
            out.add(moved)
    return sorted(out)


def next_fire(
    schedule: ScheduleTiming,
    calendars: Mapping[str, Calendar],
    after: datetime,
    sources: ScheduleSources | None = None,
    horizon: timedelta = timedelta(days=731),
) -> Fire | None:
    """The first fire strictly after ``after`` (blocked or not), or None within ``horizon``.
    For wiring a scheduler: register it, and on firing ask again from that time."""
    require_aware(after)
    lo = after.astimezone(UTC) + timedelta(microseconds=1)
    limit = lo + horizon
    step = timedelta(days=1)
    while lo < limit:
        hi = min(lo + step, limit)
        found = fire_times(schedule, calendars, lo, hi, sources)
        if found:
            return found[0]
        lo, step = hi, min(step * 4, timedelta(days=92))
    return None


class _Blocker:
    """A blocking calendar's windows as two parallel lists, so the lookup per fire time is
    one C-level ``bisect`` (no key function called per comparison)."""

    __slots__ = ("ends", "name", "starts")

    def __init__(self, name: str, windows: Sequence[Window]) -> None:
        self.name = name
        self.starts = [w.start for w in windows]
        self.ends = [w.end for w in windows]


def _blocker(blockers: Sequence[_Blocker], t: datetime) -> str | None:
    for b in blockers:
        i = bisect.bisect_right(b.starts, t) - 1
        if i >= 0 and t < b.ends[i]:
            return b.name
    return None

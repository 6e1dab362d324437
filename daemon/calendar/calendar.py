"""The runtime ``Calendar``: a named, immutable set of windows with pure queries.

``windows``, ``active_at`` and ``next_transition`` read no clock and do no I/O; the same
arguments always give the same answer. A calendar keeps a small memo of recent
``windows`` results so that combinations and ``plan`` reuse a child's expansion instead of
recomputing it; the memo never changes an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from daemon.calendar.sources import Source
from daemon.calendar.window import Window, intersect, require_aware, subtract, union

__all__ = ["DEFAULT_HORIZON", "AllOf", "AnyOf", "Calendar", "Except"]

DEFAULT_HORIZON = timedelta(days=731)
"""How far ``next_transition`` looks before it answers None (two years)."""

_MEMO_SIZE = 32
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, eq=False)
class Calendar:
    """A named set of windows in a time zone (the zone matters for how it was built only:
    every window is an aware UTC interval)."""

    name: str
    tz: tzinfo
    source: Source = field(repr=False)
    _memo: dict[tuple[datetime, datetime], list[Window]] = field(default_factory=dict, repr=False)

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """Sorted, merged, non-overlapping windows clipped to ``[start, end)``."""
        require_aware(start, end)
        if end <= start:
            return []
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        key = (start, end)
        hit = self._memo.get(key)
        if hit is None:
            hit = self.source.spans(start, end)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = hit
        return list(hit)

    def active_at(self, t: datetime) -> bool:
        """True when ``t`` lies inside a window (windows are ``[start, end)``)."""
        require_aware(t)
        t = t.astimezone(UTC)
        return bool(self.source.spans(t, t + _EPSILON))

    def next_transition(
        self, after: datetime, horizon: timedelta = DEFAULT_HORIZON
    ) -> datetime | None:
        """The first instant strictly after ``after`` where ``active_at`` changes, or None
        if there is none within ``horizon``."""
        require_aware(after)
        after = after.astimezone(UTC)
        limit = after + horizon
        lo = after
        step = timedelta(days=7)
        while lo < limit:
            hi = min(lo + step, limit)
            for w in self.source.spans(lo, hi):
                # Boundaries equal to lo or hi may be clipping artefacts; a real boundary
                # at the old hi is found in the next chunk, which starts a second earlier.
                if lo < w.start < hi and w.start > after:
                    return w.start
                if lo < w.end < hi and w.end > after:
                    return w.end
            if hi >= limit:
                break
            lo = hi - timedelta(seconds=1)
            step = min(step * 2, timedelta(days=92))
        return None


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Union of own leaf sources and other calendars."""

    parts: tuple[Source | Calendar, ...]

    def spans(self, start: datetime, end: datetime) -> list[Window]:
        if len(self.parts) == 1:
            return _spans(self.parts[0], start, end)
        return union(_spans(p, start, end) for p in self.parts)


@dataclass(frozen=True, slots=True)
class AllOf:
    """Intersection: the base (if any) and every listed calendar."""

    parts: tuple[Source | Calendar, ...]

    def spans(self, start: datetime, end: datetime) -> list[Window]:
        result: Sequence[Window] | None = None
        for part in self.parts:
            found = _spans(part, start, end)
            result = found if result is None else intersect(result, found)
            if not result:
                return []
        return list(result or [])


@dataclass(frozen=True, slots=True)
class Except:
    """``base`` minus the union of ``minus``."""

    base: Source | Calendar
    minus: tuple[Source | Calendar, ...]

    def spans(self, start: datetime, end: datetime) -> list[Window]:
        base = _spans(self.base, start, end)
        if not base:
            return []
        return subtract(base, union(_spans(m, start, end) for m in self.minus))


def _spans(part: Source | Calendar, start: datetime, end: datetime) -> list[Window]:
    if isinstance(part, Calendar):
        return part.windows(start, end)
    return part.spans(start, end)

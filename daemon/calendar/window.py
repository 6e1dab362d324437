"""Windows and the interval algebra every calendar source is built from.

A ``Window`` is a half-open interval ``[start, end)`` of aware UTC datetimes. Lists of
windows handed between functions here are always *normalised*: sorted, non-empty, and
merged so that no two overlap or touch. Keeping one representation means union,
intersection and difference are each one linear merge, and ``active_at`` agrees with
``windows`` by construction.

Wall-clock conversion (``localize``) is also here because every source needs the same
DST rule:

* a wall time inside a spring-forward gap (02:30 on a day that jumps 02:00 -> 03:00) maps
  to the end of the gap, i.e. the transition instant (03:00 new local time). This is
  deliberately *not* zoneinfo's ``fold=0`` arithmetic, which would give 03:30: a window
  or job "at 02:30" should start as soon as the clock passes 02:30, like cron does;
* a wall time inside a fall-back repeat maps to its first occurrence (``fold=0``);
* durations are absolute elapsed time, so a 1 h window from 02:30 CEST on the fall-back
  night ends at 02:30 CET.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = [
    "Window",
    "clip",
    "intersect",
    "localize",
    "merge",
    "require_aware",
    "subtract",
    "union",
]


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """``[start, end)`` in aware UTC; ``start < end``."""

    start: datetime
    end: datetime

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def require_aware(*values: datetime) -> None:
    """The pure API never guesses a zone for an instant: naive input is a caller bug."""
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got naive {value!r}")


def merge(windows: Iterable[Window]) -> list[Window]:
    """Sort and merge overlapping or touching windows; drop empty ones."""
    items = sorted(w for w in windows if w.start < w.end)
    out: list[Window] = []
    for w in items:
        if out and w.start <= out[-1].end:
            if w.end > out[-1].end:
                out[-1] = Window(out[-1].start, w.end)
        else:
            out.append(w)
    return out


def clip(windows: Iterable[Window], start: datetime, end: datetime) -> list[Window]:
    """Restrict already-sorted windows to ``[start, end)``."""
    out: list[Window] = []
    for w in windows:
        if w.end <= start:
            continue
        if w.start >= end:
            break
        if w.start >= start and w.end <= end:
            out.append(w)
        else:
            out.append(Window(max(w.start, start), min(w.end, end)))
    return out


def union(lists: Iterable[Sequence[Window]]) -> list[Window]:
    return merge(w for ws in lists for w in ws)


def intersect(a: Sequence[Window], b: Sequence[Window]) -> list[Window]:
    """Intersection of two normalised lists (two-pointer sweep)."""
    out: list[Window] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i].start, b[j].start)
        hi = min(a[i].end, b[j].end)
        if lo < hi:
            out.append(Window(lo, hi))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Sequence[Window], b: Sequence[Window]) -> list[Window]:
    """``a`` minus ``b`` for normalised lists."""
    out: list[Window] = []
    j = 0
    for w in a:
        cur = w.start
        while j < len(b) and b[j].end <= cur:
            j += 1
        k = j
        while k < len(b) and b[k].start < w.end:
            if b[k].start > cur:
                out.append(Window(cur, b[k].start))
            cur = max(cur, b[k].end)
            if cur >= w.end:
                break
            k += 1
        if cur < w.end:
            out.append(Window(cur, w.end))
    return out


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Wall-clock time in ``tz`` -> aware UTC, with the gap/fold rule of the module doc."""
    if tz is UTC:
        return naive.replace(tzinfo=UTC)
    first = naive.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return utc
    # In a gap: the transition instant lies between the readings with the offsets after
    # (earlier instant) and before (later instant) the jump. Find it to the second.
    later = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = sorted((utc, later))
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    off_lo = _offset_at(lo_s, tz)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset_at(mid, tz) == off_lo:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _offset_at(epoch: int, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()

"""Calendar overrides: a person forces a calendar active (``on``) or inactive (``off``)
until a time, and every calendar built on it follows.

Applied as a pure rewrite of the built calendars: the overridden calendar's source is
wrapped so that its windows are forced inside the override's span, and every calendar
that refers to it (``any_of``, ``all_of``, ``except``) is rebuilt around the new one, so
``change-freeze: any_of [year-end-freeze, ...]`` lifts when ``year-end-freeze`` is
overridden ``off``. Because the override is a window, its expiry is an ordinary
transition: the reconciler wakes there, and ``plan`` shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.calendar.calendar import AllOf, AnyOf, Calendar, Except
from daemon.calendar.sources import Source
from daemon.calendar.window import Window, clip, subtract, union
from daemon.kernel.overrides import Override

__all__ = ["apply_calendar_overrides"]

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Forced:
    """``base`` with ``on`` windows forced active and ``off`` windows forced inactive."""

    base: Source | Calendar
    on: tuple[Window, ...]
    off: tuple[Window, ...]

    def spans(self, start: datetime, end: datetime) -> list[Window]:
        found = (
            self.base.windows(start, end)
            if isinstance(self.base, Calendar)
            else self.base.spans(start, end)
        )
        if self.off:
            found = subtract(found, clip(self.off, start, end))
        if self.on:
            found = union([found, clip(self.on, start, end)])
        return found


def _forced(overrides: Iterable[Override]) -> dict[str, tuple[list[Window], list[Window]]]:
    """Per calendar: the on and off spans, a later override winning where they overlap."""
    out: dict[str, tuple[list[Window], list[Window]]] = {}
    ordered = sorted(
        (o for o in overrides if o.target_kind == "calendar" and o.state in ("on", "off")),
        key=lambda o: (o.start or _BEGINNING, o.id),
    )
    for o in ordered:
        begin = o.start or _BEGINNING
        if o.end <= begin:
            continue
        span = [Window(begin, o.end)]
        on, off = out.get(o.target, ([], []))
        if o.state == "on":
            on, off = union([on, span]), subtract(off, span)
        else:
            on, off = subtract(on, span), union([off, span])
        out[o.target] = (on, off)
    return out


def apply_calendar_overrides(
    calendars: Mapping[str, Calendar], overrides: Sequence[Override]
) -> Mapping[str, Calendar]:
    """The calendars with every calendar override applied (the same mapping if none)."""
    forced = {k: v for k, v in _forced(overrides).items() if k in calendars}
    if not forced:
        return calendars
    memo: dict[str, Calendar] = {}

    def rebuilt(cal: Calendar) -> Calendar:
        done = memo.get(cal.name)
        if done is not None:
            return done
        source = rewrite(cal.source)
        if cal.name in forced:
            on, off = forced[cal.name]
            source = Forced(source, tuple(on), tuple(off))
        new = cal if source is cal.source else Calendar(name=cal.name, tz=cal.tz, source=source)
        memo[cal.name] = new
        return new

    def part(p: Source | Calendar) -> Source | Calendar:
        return rebuilt(p) if isinstance(p, Calendar) else rewrite(p)

    def rewrite(src: Source) -> Source:
        if isinstance(src, AnyOf | AllOf):
            parts = tuple(part(p) for p in src.parts)
            if all(a is b for a, b in zip(parts, src.parts, strict=True)):
                return src
            return type(src)(parts)
        if isinstance(src, Except):
            base, minus = part(src.base), tuple(part(m) for m in src.minus)
            if base is src.base and all(a is b for a, b in zip(minus, src.minus, strict=True)):
                return src
            return Except(base, minus)
        return src

    return {name: rebuilt(cal) for name, cal in calendars.items()}

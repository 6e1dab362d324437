"""``CalendarSpec`` mapping -> runtime ``Calendar`` values.

The file system is touched only through ``ics_file`` (reading .ics files, relative to the
policy file's directory). References between calendars are resolved here
once, in dependency order, so an unknown name or a cycle is a ``ConfigError`` at load time
rather than a surprise at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.calendar.calendar import AllOf, AnyOf, Calendar, Except
from daemon.calendar.calendar_spec import CalendarSpec, IcsSpec, RangeSpec
from daemon.calendar.ics_file import MAX_ICS_BYTES, load_ics, load_ics_checked
from daemon.calendar.sources import HolidaySource, IcsSource, RangeSource, RecurringSource, Source
from daemon.calendar.window import Window, localize, merge
from daemon.kernel.errors import ConfigError
from daemon.kernel.files import read_bounded

__all__ = [
    "build_calendars",
    "ics_event_summaries",
    "load_ics",  # where firetimes has imported it from
]


def build_calendars(
    specs: Mapping[str, CalendarSpec], base_dir: Path, warnings: list[str] | None = None
) -> dict[str, Calendar]:
    """Build every calendar; raise ``ConfigError`` naming the calendar and the field.
    What is usable but suspicious (a zero-length event) is appended to ``warnings``."""
    built: dict[str, Calendar] = {}
    sink: list[str] = [] if warnings is None else warnings
    for name in sorted(specs):
        _build(name, specs, base_dir, built, (), sink)
    return built


def _build(
    name: str,
    specs: Mapping[str, CalendarSpec],
    base_dir: Path,
    built: dict[str, Calendar],
    stack: tuple[str, ...],
    warnings: list[str],
) -> Calendar:
    done = built.get(name)
    if done is not None:
        return done
    spec = specs[name]
    tz = ZoneInfo(spec.timezone)

    def ref(field: str, other: str) -> Calendar:
        if other not in specs:
            known = ", ".join(sorted(specs)) or "(none defined)"
            raise ConfigError(
                f"calendar {name!r}: {field}: unknown calendar {other!r}; expected one of: {known}"
            )
        if other == name or other in stack:
            cycle = " -> ".join((*stack, name, other)[(*stack, name).index(other) :])
            raise ConfigError(f"calendar {name!r}: {field}: reference cycle {cycle}")
        return _build(other, specs, base_dir, built, (*stack, name), warnings)

    leaves: list[Source | Calendar] = []
    leaves.extend(RecurringSource(rec.cron, rec.duration, tz) for rec in spec.recurring)
    if spec.ranges:
        leaves.append(RangeSource(_ranges(name, spec.ranges, tz)))
    if spec.ics is not None:
        leaves.append(
            IcsSource(
                load_ics_checked(spec.ics, base_dir, f"calendar {name!r}: ics", warnings),
                tz,
                spec.ics.summary,
            )
        )
    if spec.holidays is not None:
        leaves.append(HolidaySource(spec.holidays.country, spec.holidays.subdivision, tz))
    leaves.extend(ref(f"any_of[{i}]", other) for i, other in enumerate(spec.any_of))

    source: Source | Calendar | None = None
    if leaves:
        source = leaves[0] if len(leaves) == 1 else AnyOf(tuple(leaves))
    if spec.all_of:
        parts = [ref(f"all_of[{i}]", other) for i, other in enumerate(spec.all_of)]
        source = AllOf(tuple(parts if source is None else [source, *parts]))
    if source is None:  # excluded by CalendarSpec's validator; kept for a clear message
        raise ConfigError(f"calendar {name!r}: no source given")
    if spec.except_:
        minus = tuple(ref(f"except[{i}]", other) for i, other in enumerate(spec.except_))
        source = Except(source, minus)
    if isinstance(source, Calendar):
        source = AnyOf((source,))
    calendar = Calendar(name=name, tz=tz, source=source)
    built[name] = calendar
    return calendar


def _ranges(name: str, ranges: tuple[RangeSpec, ...], tz: tzinfo) -> tuple[Window, ...]:
    out: list[Window] = []
    for i, r in enumerate(ranges):
        start, end = _aware(r.start, tz), _aware(r.end, tz)
        if end <= start:
            raise ConfigError(
                f"calendar {name!r}: ranges[{i}]: end {r.end.isoformat()} is not after start "
                f"{r.start.isoformat()}; expected end > start"
            )
        out.append(Window(start, end))
    return tuple(merge(out))


def _aware(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        return localize(value, tz)
    return value.astimezone(UTC)


def ics_event_summaries(spec: IcsSpec, base_dir: Path) -> list[str] | None:
    """The SUMMARY of every VEVENT (``""`` when it has none), or None when the document
    cannot be read (``load_ics`` reports that as an error of its own). For the warning
    about an iCalendar that can never open a window."""
    import icalendar

    try:
        if spec.path is not None:
            path = Path(spec.path)
            text: str | bytes = read_bounded(
                path if path.is_absolute() else base_dir / path, MAX_ICS_BYTES
            )
        else:
            text = spec.text or ""
        parsed = icalendar.Calendar.from_ical(text)
    except Exception:  # unreadable is load_ics's error to report, not ours
        return None
    return [str(event.get("SUMMARY", "")) for event in parsed.walk("VEVENT")]

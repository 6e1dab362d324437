"""An ``ics:`` source read, checked event by event, and parsed once per content.

Real exports are messy. One event without DTSTART, with two of them or with a broken
RRULE used to reject the whole file with a bare ``KeyError``; now the problem names the
file and the event (line, UID, SUMMARY) and says what is wrong, and ``ics: {strict:
false}`` skips such events with a warning instead. An event that ends before it starts
and a timed event of zero length are kept and warned about (the library reads the former
as the span between its two times; the latter never makes a calendar active). A
date-valued event whose end equals its start (``DTEND;VALUE=DATE`` equal to ``DTSTART``,
as holiday exports write them) is the whole day, as calendar apps read it (``sources``).

Parsing a 1.6 MB file takes seconds, and the same file is used by calendars and
schedules, again on every reload and by ``plan``; so the parsed document is kept by the
SHA-256 of its bytes, together with the occurrences it already expanded per year
(``IcsDocument.between``): the last two parses strongly, and any parse the policy in force
still uses weakly, so an edited file's old parse (50 MB for 1.6 MB of text) is freed. A
changed file has a new hash and is parsed afresh.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.calendar.calendar_spec import IcsSpec
from daemon.kernel.errors import ConfigError
from daemon.kernel.files import UnreadableFile, read_bounded

__all__ = ["MAX_ICS_BYTES", "IcsDocument", "clear_cache", "load_ics", "load_ics_checked"]

MAX_ICS_BYTES = 8 << 20
"""8 MiB: five times the largest export seen in the wild (1.6 MB); parsing is ~1 s/MB."""
MAX_OCCURRENCES_PER_YEAR = 100_000
_CACHE_SIZE = 2
_SHOWN = 10
"""Bad events listed in one message; the rest are counted."""
_PER_YEAR = {
    "YEARLY": 1,
    "MONTHLY": 12,
    "WEEKLY": 53,
    "DAILY": 366,
    "HOURLY": 8_784,
    "MINUTELY": 527_040,
    "SECONDLY": 31_622_400,
}


@dataclass(slots=True, weakref_slot=True)
class IcsDocument:
    """A parsed iCalendar whose expansions are memoised per calendar year.

    ``between`` answers a superset of the occurrences overlapping ``[start, end)`` (whole
    years, possibly an occurrence twice where it spans New Year); ``ics_occurrences``
    filters and the callers merge, so the memo changes speed only, never answers."""

    query: Any
    origin: Any = None
    """The cache entry this came from: while a policy holds the document, the entry stays
    findable (``_live`` is weak) for the next reload."""
    _years: dict[int, list[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def between(self, start: datetime, end: datetime) -> list[Any]:
        out: list[Any] = []
        for year in range(start.astimezone(UTC).year, end.astimezone(UTC).year + 1):
            found = self._years.get(year)
            if found is None:
                lo = datetime(year, 1, 1, tzinfo=UTC)
                found = list(self.query.between(lo, datetime(year + 1, 1, 1, tzinfo=UTC)))
                with self._lock:
                    self._years.setdefault(year, found)
            out.extend(found)
        return out


@dataclass(frozen=True, slots=True, weakref_slot=True)
class _Parsed:
    document: IcsDocument | None
    problems: tuple[str, ...]
    """Bad events: an error when strict, skipped with a warning otherwise."""
    warnings: tuple[str, ...]
    fatal: str | None = None
    """The file as a whole cannot be used."""


_cache: OrderedDict[tuple[str, bool], _Parsed] = OrderedDict()
"""The last few parses, held strongly (validate then plan, a calendar and a schedule)."""
_live: weakref.WeakValueDictionary[tuple[str, bool], _Parsed] = weakref.WeakValueDictionary()
"""Every parse still in use (the policy in force holds its documents): a reload of an
unchanged file finds it here, and an edited file's old parse is freed, not kept."""
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """For benches and tests that time a cold parse."""
    with _cache_lock:
        _cache.clear()
        _live.clear()


def load_ics(spec: IcsSpec, base_dir: Path, where: str) -> IcsDocument:
    """``load_ics_checked`` for callers that need no warnings."""
    return load_ics_checked(spec, base_dir, where, [])


def load_ics_checked(spec: IcsSpec, base_dir: Path, where: str, warnings: list[str]) -> IcsDocument:
    """The parsed document; ``ConfigError`` naming the file and every bad event, and
    ``warnings`` appended (skipped events when not strict, zero-length events)."""
    if spec.path is not None:
        path = Path(spec.path)
        if not path.is_absolute():
            path = base_dir / path
        label = f"{where}.path {str(path)!r}"
        try:
            raw = read_bounded(path, MAX_ICS_BYTES)
        except UnreadableFile as exc:
            raise ConfigError(
                f"{where}.path: cannot read {str(path)!r}: {exc} (expected a readable .ics "
                "file; a relative path is relative to the policy file's directory)"
            ) from None
    else:
        assert spec.text is not None
        label = f"{where}.text"
        raw = spec.text.encode("utf-8", "surrogatepass")
    parsed = _parse_cached(raw, spec.strict)
    if parsed.fatal is not None:
        raise ConfigError(f"{label}: {parsed.fatal}")
    if parsed.problems and spec.strict:
        shown = "\n  ".join(parsed.problems[:_SHOWN])
        more = len(parsed.problems) - _SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ConfigError(
            f"{label}: {len(parsed.problems)} bad event{'s' if len(parsed.problems) != 1 else ''}"
            f":\n  {shown}{tail}\n  (fix the events, or set ics: {{strict: false}} to skip bad "
            "events with a warning)"
        )
    found = [f"skipped {p}" for p in parsed.problems] + list(parsed.warnings)
    warnings.extend(f"{label}: {w}" for w in found[:_SHOWN])
    if len(found) > _SHOWN:  # one line per event of a 6,000-event export helps nobody
        warnings.append(f"{label}: ... and {len(found) - _SHOWN} more warnings like these")
    assert parsed.document is not None
    return parsed.document


def _parse_cached(raw: bytes, strict: bool) -> _Parsed:
    key = (hashlib.sha256(raw).hexdigest(), strict)
    with _cache_lock:
        hit = _cache.get(key) or _live.get(key)
        if hit is not None:
            _cache[key] = hit
            _cache.move_to_end(key)
            return hit
    parsed = _parse(raw, strict)
    if parsed.document is not None:
        parsed.document.origin = parsed
    with _cache_lock:
        _cache[key] = parsed
        _live[key] = parsed
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return parsed


def _parse(raw: bytes, strict: bool) -> _Parsed:
    import icalendar
    import recurring_ical_events

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _Parsed(None, (), (), f"line {line}: not UTF-8 text; expected a UTF-8 .ics file")
    has_envelope = "BEGIN:VCALENDAR" in text.upper()
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError...: "bad file"
        hint = (
            "expected a valid iCalendar (RFC 5545) file"
            if has_envelope
            else "expected BEGIN:VCALENDAR ... END:VCALENDAR"
        )
        return _Parsed(None, (), (), f"not a valid iCalendar document ({_why(exc)}); {hint}")
    events = list(cal.walk("VEVENT"))
    lines = _event_lines(text, len(events))
    problems: list[str] = []
    warnings: list[str] = []
    bad: list[Any] = []
    for i, event in enumerate(events):
        try:
            verdict = _check_event(event)
        except Exception as exc:  # a broken property raises on any access (icalendar 6+)
            verdict = ("bad", f"unreadable ({_why(exc)})")
        if verdict is None:
            continue
        kind, message = verdict
        described = f"{_describe(event, lines[i])}: {message}"
        if kind == "bad":
            problems.append(described)
            bad.append(event)
        else:
            warnings.append(described)
    if bad and strict:
        return _Parsed(None, tuple(problems), tuple(warnings))
    if bad:
        _remove(cal, bad)
    try:
        query = recurring_ical_events.of(cal)
        # Expand once now so that what the checks above miss fails at load, not at 3 a.m.
        query.between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
    except Exception as exc:  # the library's errors are many and undocumented
        failing = _failing(cal, events, bad)
        if not failing:
            return _Parsed(None, (), (), f"cannot expand the events ({_why(exc)})")
        index = {id(e): i for i, e in enumerate(events)}
        problems.extend(
            f"{_describe(e, lines[index[id(e)]])}: cannot be expanded ({why})" for e, why in failing
        )
        if strict:
            return _Parsed(None, tuple(problems), tuple(warnings))
        _remove(cal, [e for e, _ in failing])
        try:
            query = recurring_ical_events.of(cal)
            query.between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
        except Exception as again:  # as above
            return _Parsed(None, (), (), f"cannot expand the events ({_why(again)})")
    return _Parsed(IcsDocument(query), tuple(problems), tuple(warnings))


_TIME_PROPS = ("DTSTART", "DTEND", "DURATION")
"""Read by aomd itself; errors in other properties (CREATED, X-..., an RRULE the library
can still expand) do not change a window, and the library is the judge of the rest."""


def _check_event(event: Any) -> tuple[str, str] | None:
    """("bad" | "warn", what is wrong), or None for a usable event.

    Tolerant where the iCalendar library is (a date DTSTART with a date-time DTEND, two
    RRULEs, an empty ``RRULE:``): a file that expanded before must still load."""
    for prop in (*_TIME_PROPS, "RECURRENCE-ID"):
        value = event.get(prop)
        if isinstance(value, list):
            return "bad", f"{prop} given {len(value)} times; expected it once"
    for prop, msg in getattr(event, "errors", None) or ():
        if prop in _TIME_PROPS:
            return "bad", f"{prop}: {_short(str(msg))}"
    start_prop = event.get("DTSTART")
    if start_prop is None:
        return "bad", "no DTSTART; expected every event to have a start"
    start = getattr(start_prop, "dt", None)
    if not isinstance(start, date):
        return "bad", "DTSTART is not a date or date-time"
    rrules = event.get("RRULE")
    for rrule in rrules if isinstance(rrules, list) else [rrules]:
        problem = _check_rrule(rrule)
        if problem is not None:
            return "bad", problem
    end_prop = event.get("DTEND")
    end = getattr(end_prop, "dt", None) if end_prop is not None else None
    length = getattr(event.get("DURATION"), "dt", None) if end is None else None
    if isinstance(start, datetime) and isinstance(end, datetime):
        if (start.tzinfo is None) == (end.tzinfo is None):
            length = end - start
    elif not isinstance(start, datetime) and type(end) is date:
        length = end - start
    if isinstance(length, timedelta) and length < timedelta(0):
        return "warn", (
            "ends before it starts; used as the span between its start and end, as the "
            "iCalendar library reads it"
        )
    if isinstance(start, datetime) and length == timedelta(0):
        return "warn", "zero-length event (ends when it starts): it never makes a calendar active"
    if end is not None and event.get("DURATION") is not None:
        return "warn", "both DTEND and DURATION (RFC 5545 allows one); DTEND is used"
    return None


def _check_rrule(prop: Any) -> str | None:
    """Refuse rules that would expand to millions of occurrences a year (FREQ=SECONDLY):
    the library materialises every occurrence of a queried range."""
    if prop is None or prop.__class__.__name__ == "vBroken":
        return None  # the library decides (and the isolation names the event)
    freq = (prop.get("FREQ") or [None])[0]
    if freq not in _PER_YEAR:
        return None  # empty or unknown: the library decides (and isolation names it)
    count = (prop.get("COUNT") or [None])[0]
    if isinstance(count, int) and count <= MAX_OCCURRENCES_PER_YEAR:
        return None
    try:
        interval = max(int((prop.get("INTERVAL") or [1])[0]), 1)
    except (TypeError, ValueError):
        interval = 1
    per_year = _PER_YEAR[freq] / interval
    for part in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        per_year *= max(len(prop.get(part) or []), 1)
    if per_year > MAX_OCCURRENCES_PER_YEAR:
        return (
            f"RRULE repeats about {int(per_year):,} times a year; expected at most "
            f"{MAX_OCCURRENCES_PER_YEAR:,} (a calendar window is minutes long at least)"
        )
    return None


def _failing(cal: Any, events: list[Any], bad: list[Any]) -> list[tuple[Any, str]]:
    """The events whose expansion fails, found by halving (a series -- the events of one
    UID, overrides included -- stays together): a few expansions of shrinking halves,
    not one per event, so a 6,000-event file with one bad event is still quick."""
    import icalendar
    import recurring_ical_events

    timezones = [sub for sub in cal.subcomponents if sub.name == "VTIMEZONE"]
    skip = {id(e) for e in bad}
    series: dict[str, list[Any]] = {}
    for n, event in enumerate(events):
        if id(event) not in skip:
            uid = event.get("UID")
            key = str(uid) if uid is not None and not isinstance(uid, list) else f"#{n}"
            series.setdefault(key, []).append(event)

    def error(groups: list[list[Any]]) -> str | None:
        one = icalendar.Calendar()
        for tz in timezones:
            one.add_component(tz)
        for group in groups:
            for event in group:
                one.add_component(event)
        try:
            q = recurring_ical_events.of(one)
            q.between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
        except Exception as exc:  # the same undocumented errors as in _parse
            return _why(exc)
        return None

    out: list[tuple[Any, str]] = []
    pending = [list(series.values())]
    while pending:
        groups = pending.pop()
        why = error(groups)
        if why is None:
            continue
        if len(groups) == 1:
            out.extend((event, why) for event in groups[0][:1])
            continue
        half = len(groups) // 2
        pending += [groups[half:], groups[:half]]
    return out


def _remove(cal: Any, events: list[Any]) -> None:
    gone = {id(e) for e in events}
    stack = [cal]
    while stack:
        comp = stack.pop()
        comp.subcomponents[:] = [s for s in comp.subcomponents if id(s) not in gone]
        stack.extend(comp.subcomponents)


def _event_lines(text: str, count: int) -> list[int | None]:
    """Line of each ``BEGIN:VEVENT``, in document order (the order ``walk`` yields)."""
    found = [
        n
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip().upper() == "BEGIN:VEVENT"
    ]
    return list(found) if len(found) == count else [None] * count


def _describe(event: Any, line: int | None) -> str:
    try:
        return _describe_parts(event, line)
    except Exception:  # a broken UID or SUMMARY raises on access; the line still helps
        return f"line {line}" if line is not None else "event"


def _describe_parts(event: Any, line: int | None) -> str:
    parts = []
    uid = event.get("UID")
    summary = event.get("SUMMARY")
    if uid is not None and not isinstance(uid, list):
        parts.append(f"UID {_short(str(uid))}")
    if summary is not None and not isinstance(summary, list):
        parts.append(f"SUMMARY {_short(str(summary))!r}")
    where = f"line {line}" if line is not None else "event"
    return f"{where} ({', '.join(parts)})" if parts else where


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_short(' '.join(str(exc).split()))}"

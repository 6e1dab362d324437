"""Real-world .ics exports: holiday calendars, bad events, relative paths, the parse cache.

The holiday export below is written the way public-holiday feeds are: DATE values with
DTEND equal to DTSTART, CRLF lines, folded descriptions, X-WR-TIMEZONE. Before issue #18
every such event was dropped as zero-length and no trigger was ever switched off.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.calendar import ics_file
from daemon.calendar.plan import plan
from daemon.kernel.errors import PolicyError
from daemon.policy.loader import load_policy_dir
from daemon.policy.validate import validate_paths
from tests.support.calendars import cron_workflow

NY = ZoneInfo("America/New_York")

HOLIDAYS = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//Example Corp//Public Holidays US//EN\r\n"
    "CALSCALE:GREGORIAN\r\n"
    "X-WR-CALNAME:US Holidays\r\n"
    "X-WR-TIMEZONE:America/New_York\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20260704\r\n"
    "DTEND;VALUE=DATE:20260704\r\n"
    "DTSTAMP:20251201T000000Z\r\n"
    "UID:20260704_independence@example.com\r\n"
    "SUMMARY:Independence Day\r\n"
    "DESCRIPTION:A federal holiday; offices and most businesses are closed on this\r\n"
    "  day. Written with DTEND equal to DTSTART, as many exports do.\r\n"
    "TRANSP:TRANSPARENT\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "DTSTART;VALUE=DATE:20261126\r\n"
    "DTEND;VALUE=DATE:20261126\r\n"
    "DTSTAMP:20251201T000000Z\r\n"
    "UID:20261126_thanksgiving@example.com\r\n"
    "SUMMARY:Thanksgiving Day\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)

POLICY = """\
calendars:
  us-holidays:
    timezone: America/New_York
    ics: {ics}
triggers:
  - name: no-jobs-on-holidays
    select: {{names: ["*"]}}
    off_during: us-holidays
"""


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)


def write(tmp_path: Path, ics_text: str, ics: str = "holidays.ics", **files: str) -> Path:
    pol = tmp_path / "pol"
    pol.mkdir(exist_ok=True)
    (pol / "holidays.ics").write_bytes(ics_text.encode())
    (pol / "policy.yaml").write_text(POLICY.format(ics=ics))
    for name, text in files.items():
        (pol / name).write_text(text)
    return pol


def test_holiday_export_freezes_trigger_for_the_whole_local_day(tmp_path: Path) -> None:
    policy = load_policy_dir(write(tmp_path, HOLIDAYS))
    assert policy.warnings == ()
    items = plan(
        policy.built_calendars,
        policy.triggers,
        policy.schedules,
        [cron_workflow("wf-report", "report")],
        ny(2026, 7, 1),
        ny(2026, 12, 1),
    )
    edges = [(i.at, i.enable) for i in items if i.kind == "trigger" and not i.initial]
    assert edges == [
        (ny(2026, 7, 4), False),  # 04:00 UTC: midnight in New York, not in UTC
        (ny(2026, 7, 5), True),
        (ny(2026, 11, 26), False),
        (ny(2026, 11, 27), True),
    ]
    cal = policy.built_calendars["us-holidays"]
    assert cal.active_at(ny(2026, 7, 4, 23, 59))
    assert not cal.active_at(ny(2026, 7, 3, 23, 59))


def test_bad_events_name_file_line_uid_and_summary(tmp_path: Path) -> None:
    bad = HOLIDAYS.replace(
        "DTSTART;VALUE=DATE:20261126\r\n", "DTSTART;VALUE=DATE:20261126\r\nDTSTART:20261127\r\n"
    ).replace("DTSTART;VALUE=DATE:20260704\r\n", "")
    pol = write(tmp_path, bad)
    with pytest.raises(PolicyError) as err:
        load_policy_dir(pol)
    text = str(err.value)
    assert "holidays.ics" in text
    assert "2 bad events" in text
    assert "line 7 (UID 20260704_independence@example.com, SUMMARY 'Independence Day')" in text
    assert "no DTSTART" in text
    assert "SUMMARY 'Thanksgiving Day'): DTSTART given 2 times" in text
    assert "strict: false" in text  # the way out is named
    assert "expected BEGIN:VCALENDAR" not in text  # it is one
    assert "KeyError" not in text
    assert "AttributeError" not in text


def test_non_strict_skips_bad_events_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = HOLIDAYS.replace("DTSTART;VALUE=DATE:20260704\r\n", "")
    pol = write(tmp_path, bad, ics="{path: holidays.ics, strict: false}")
    policy = load_policy_dir(pol)
    assert len(policy.warnings) == 1
    assert "policy.yaml:2" in policy.warnings[0]
    assert "skipped line 7 (UID 20260704_independence@example.com" in policy.warnings[0]
    cal = policy.built_calendars["us-holidays"]
    assert cal.active_at(ny(2026, 11, 26, 12))  # the good event is still used
    assert not cal.active_at(ny(2026, 7, 4, 12))
    assert validate_paths([pol]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ")
    assert "no DTSTART" in err


def test_reversed_and_zero_length_events_are_warnings(tmp_path: Path) -> None:
    events = (
        "BEGIN:VEVENT\r\nUID:rev\r\nSUMMARY:Backwards\r\nDTSTART:20260301T120000Z\r\n"
        "DTEND:20260301T110000Z\r\nEND:VEVENT\r\n"
    )
    zero = (
        "BEGIN:VEVENT\r\nUID:zero\r\nSUMMARY:Instant\r\nDTSTART:20260302T120000Z\r\n"
        "DTEND:20260302T120000Z\r\nEND:VEVENT\r\n"
    )
    pol = write(tmp_path, HOLIDAYS.replace("END:VCALENDAR", events + zero + "END:VCALENDAR"))
    policy = load_policy_dir(pol)  # was accepted silently: exit 0 and not a word
    backwards, instant = policy.warnings
    assert "SUMMARY 'Backwards'): ends before it starts; used as the span between" in backwards
    assert "SUMMARY 'Instant'): zero-length event" in instant
    cal = policy.built_calendars["us-holidays"]
    assert cal.active_at(datetime(2026, 3, 1, 11, 30, tzinfo=UTC))  # 11:00-12:00 UTC
    assert not cal.active_at(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))


def test_not_a_calendar_keeps_the_envelope_hint_and_a_broken_one_does_not(
    tmp_path: Path,
) -> None:
    with pytest.raises(PolicyError, match=r"expected BEGIN:VCALENDAR \.\.\. END:VCALENDAR"):
        load_policy_dir(write(tmp_path, "just some text\r\n"))
    broken = HOLIDAYS.replace("END:VCALENDAR\r\n", "")
    with pytest.raises(PolicyError) as err:
        load_policy_dir(write(tmp_path, broken))
    assert "expected a valid iCalendar (RFC 5545) file" in str(err.value)


@pytest.mark.parametrize(
    ("path", "why"),
    [("/dev/zero", "a device; expected a regular file"), ("sub", "a directory")],
)
def test_ics_path_must_be_a_regular_file(tmp_path: Path, path: str, why: str) -> None:
    pol = write(tmp_path, HOLIDAYS, ics=path)
    (pol / "sub").mkdir()
    start = time.monotonic()
    with pytest.raises(PolicyError, match=why):
        load_policy_dir(pol)
    assert time.monotonic() - start < 2  # /dev/zero used to grow to 2.9 GB


def test_rrule_too_frequent_is_refused(tmp_path: Path) -> None:
    every_second = (
        "BEGIN:VEVENT\r\nUID:s\r\nDTSTART:20260101T000000Z\r\nDTEND:20260101T000001Z\r\n"
        "RRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n"
    )
    pol = write(tmp_path, HOLIDAYS.replace("END:VCALENDAR", every_second + "END:VCALENDAR"))
    with pytest.raises(PolicyError, match=r"RRULE repeats about 31,622,400 times a year"):
        load_policy_dir(pol)


def test_validate_relative_directory_finds_ics_next_to_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, HOLIDAYS)
    monkeypatch.chdir(tmp_path)
    assert validate_paths([Path("pol")]) == 0  # read pol/pol/holidays.ics before
    assert capsys.readouterr().out.startswith("ok: 0 rules, 1 calendar, 1 trigger rule")


def test_parsed_file_is_cached_by_content(tmp_path: Path) -> None:
    ics_file.clear_cache()
    pol = write(tmp_path, HOLIDAYS)
    first = load_policy_dir(pol).built_calendars["us-holidays"]
    again = load_policy_dir(pol).built_calendars["us-holidays"]  # a reload, file unchanged
    assert _document(first) is _document(again)
    (pol / "holidays.ics").write_text(HOLIDAYS.replace("Thanksgiving", "Thanks giving"))
    changed = load_policy_dir(pol).built_calendars["us-holidays"]
    assert _document(changed) is not _document(first)


def _document(calendar: object) -> object:
    source = calendar.source  # type: ignore[attr-defined]  # a single ics source: AnyOf((IcsSource,))
    leaf = source.parts[0] if hasattr(source, "parts") else source
    return leaf.query


def test_floating_times_follow_x_wr_timezone_else_the_calendar_zone(tmp_path: Path) -> None:
    """Documented in the README: the file's own X-WR-TIMEZONE wins for floating times;
    date-valued (all-day) events are always days of the calendar's ``timezone``."""
    event = (
        "BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20260301T100000\r\nDTEND:20260301T110000\r\n"
        "END:VEVENT\r\n"
    )
    with_zone = HOLIDAYS.replace("END:VCALENDAR", event + "END:VCALENDAR")
    cal = load_policy_dir(write(tmp_path, with_zone)).built_calendars["us-holidays"]
    assert cal.active_at(datetime(2026, 3, 1, 15, 30, tzinfo=UTC))  # 10:30 in New York
    without = with_zone.replace("X-WR-TIMEZONE:America/New_York\r\n", "")
    pol = write(tmp_path, without)
    (pol / "policy.yaml").write_text(
        POLICY.replace("America/New_York", "Europe/Berlin").format(ics="holidays.ics")
    )
    cal = load_policy_dir(pol).built_calendars["us-holidays"]
    assert cal.active_at(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))  # 10:30 in Berlin
    assert cal.active_at(datetime(2026, 7, 3, 22, 30, tzinfo=UTC))  # 4 July 00:30 in Berlin


def test_export_without_value_date_and_with_an_empty_rrule(tmp_path: Path) -> None:
    """Another real shape: ``DTSTART:20260704`` (a date without VALUE=DATE), DTEND equal to
    it, an empty ``RRULE:`` line and X-WR-TIMEZONE:Etc/GMT; still the whole New York day."""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Calendar Labs//Calendar 1.0//EN\r\n"
        "X-WR-TIMEZONE:Etc/GMT\r\nBEGIN:VEVENT\r\nSUMMARY:Independence Day\r\n"
        "DTSTART:20260704\r\nDTEND:20260704\r\nRRULE:\r\nUID:a1@example.com\r\n"
        "DTSTAMP:20251201T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    policy = load_policy_dir(write(tmp_path, text))
    assert policy.warnings == ()
    cal = policy.built_calendars["us-holidays"]
    assert cal.active_at(ny(2026, 7, 4))
    assert cal.active_at(ny(2026, 7, 4, 23, 59))
    assert not cal.active_at(ny(2026, 7, 5))
    assert not cal.active_at(ny(2026, 7, 3, 23, 59))


def test_event_the_library_cannot_expand_is_named_and_skippable(tmp_path: Path) -> None:
    broken = (
        "BEGIN:VEVENT\r\nUID:standup@example.com\r\nSUMMARY:Standup\r\n"
        "DTSTART:20260105T090000Z\r\nDTEND:20260105T091500Z\r\n"
        "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=2026\r\nEND:VEVENT\r\n"
    )
    text = HOLIDAYS.replace("END:VCALENDAR", broken + "END:VCALENDAR")
    with pytest.raises(PolicyError) as err:
        load_policy_dir(write(tmp_path, text))
    assert "line 24 (UID standup@example.com, SUMMARY 'Standup'): cannot be expanded" in str(
        err.value
    )
    pol = write(tmp_path, text, ics="{path: holidays.ics, strict: false}")
    policy = load_policy_dir(pol)
    (warning,) = policy.warnings
    assert "skipped line 24 (UID standup@example.com" in warning
    assert policy.built_calendars["us-holidays"].active_at(ny(2026, 7, 4, 12))


def test_cache_frees_the_parse_of_an_edited_file(tmp_path: Path) -> None:
    """Only the last two parses and those still in use are kept: a 1.6 MB file parses to
    about 50 MB, so stale versions must not pile up in a long-running daemon."""
    import gc
    import weakref

    ics_file.clear_cache()
    pol = write(tmp_path, HOLIDAYS)
    policy = load_policy_dir(pol)
    in_use = weakref.ref(_document(policy.built_calendars["us-holidays"]))
    stale = []
    for n in range(3):
        (pol / "holidays.ics").write_text(HOLIDAYS.replace("Thanksgiving", f"Thanks {n}"))
        stale.append(weakref.ref(_document(load_policy_dir(pol).built_calendars["us-holidays"])))
    gc.collect()
    assert in_use() is not None  # the policy in force still holds it ...
    assert (
        _document(load_policy_dir(write(tmp_path, HOLIDAYS)).built_calendars["us-holidays"])
        is in_use()
    )
    assert stale[0]() is None  # ... an old edit nobody holds is gone
    assert stale[2]() is not None  # the last parses are kept


def test_many_warnings_are_summarised(tmp_path: Path) -> None:
    zero = "".join(
        f"BEGIN:VEVENT\r\nUID:z{n}\r\nDTSTART:202603{n + 1:02d}T120000Z\r\n"
        f"DTEND:202603{n + 1:02d}T120000Z\r\nEND:VEVENT\r\n"
        for n in range(15)
    )
    pol = write(tmp_path, HOLIDAYS.replace("END:VCALENDAR", zero + "END:VCALENDAR"))
    warnings = load_policy_dir(pol).warnings
    assert len(warnings) == 11
    assert warnings[-1].endswith("... and 5 more warnings like these")

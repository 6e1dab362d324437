"""Hypothesis properties of calendar queries over random compositions and zones."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.calendar import Calendar, Window, build_calendars
from daemon.calendar.calendar_spec import CalendarSpec
from daemon.calendar.window import intersect, merge, subtract, union

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe"]
CRONS = [
    "30 2 * * *",
    "0 9 * * mon-fri",
    "*/45 * * * *",
    "15 1 * * sun",
    "0 0 1 * *",
    "0 22 * * sat",
]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
HORIZON = timedelta(days=60)
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

instants = st.integers(min_value=0, max_value=360 * 24 * 60).map(
    lambda m: BASE + timedelta(minutes=m)
)


@st.composite
def leaf(draw: st.DrawFn) -> dict[str, Any]:
    tz = draw(st.sampled_from(ZONES))
    kind = draw(st.sampled_from(["recurring", "ranges", "holidays"]))
    if kind == "recurring":
        minutes = draw(st.integers(min_value=1, max_value=3 * 24 * 60))
        return {
            "timezone": tz,
            "recurring": [{"cron": draw(st.sampled_from(CRONS)), "duration": minutes * 60}],
        }
    if kind == "holidays":
        country = draw(st.sampled_from(["DE", "CN", "US"]))
        return {"timezone": tz, "holidays": {"country": country}}
    ranges = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(instants)
        length = timedelta(minutes=draw(st.integers(min_value=1, max_value=20 * 24 * 60)))
        naive = draw(st.booleans())
        s = start.replace(tzinfo=None) if naive else start
        ranges.append({"start": s.isoformat(), "end": (s + length).isoformat()})
    return {"timezone": tz, "ranges": ranges}


@st.composite
def calendars(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    specs = {"a": draw(leaf()), "b": draw(leaf()), "c": draw(leaf())}
    specs["top"] = draw(
        st.sampled_from(
            [
                {"any_of": ["a", "b"]},
                {"all_of": ["a", "b"]},
                {"any_of": ["a"], "except": ["b"]},
                {"any_of": ["a", "c"], "except": ["b"]},
                {"all_of": ["a", "c"], "except": ["b"]},
                {"any_of": ["a"]},
            ]
        )
    )
    return specs


def build(specs: dict[str, dict[str, Any]]) -> dict[str, Calendar]:
    return build_calendars({k: CalendarSpec.model_validate(v) for k, v in specs.items()}, Path("."))


def normalised(ws: list[Window], start: datetime, end: datetime) -> bool:
    return all(start <= w.start < w.end <= end for w in ws) and all(
        a.end < b.start for a, b in itertools.pairwise(ws)
    )


def probes(
    ws: list[Window], start: datetime, end: datetime, extra: list[datetime]
) -> list[datetime]:
    eps = timedelta(microseconds=1)
    pts = {start, end - eps, *extra}
    for w in ws:
        pts.update({w.start, w.start - eps, w.end, w.end - eps, w.start + (w.end - w.start) / 2})
    return sorted(p for p in pts if start <= p < end)


@PROPS
@given(
    specs=calendars(),
    start=instants,
    days=st.integers(min_value=1, max_value=40),
    extra=st.lists(instants, max_size=10),
)
def test_windows_normalised_and_agree_with_active_at(
    specs: dict[str, dict[str, Any]], start: datetime, days: int, extra: list[datetime]
) -> None:
    cals = build(specs)
    end = start + timedelta(days=days)
    for cal in cals.values():
        ws = cal.windows(start, end)
        assert normalised(ws, start, end)
        for t in probes(ws, start, end, extra):
            assert cal.active_at(t) == any(t in w for w in ws), (cal.name, t)
        # Splitting the range does not change the answer.
        mid = start + (end - start) / 3
        assert merge(cal.windows(start, mid) + cal.windows(mid, end)) == ws


@PROPS
@given(specs=calendars(), after=instants)
def test_next_transition_is_the_first_change(
    specs: dict[str, dict[str, Any]], after: datetime
) -> None:
    cal = build(specs)["top"]
    nxt = cal.next_transition(after, horizon=HORIZON)
    state = cal.active_at(after)
    stop = nxt if nxt is not None else after + HORIZON
    assert nxt is None or nxt > after
    ws = cal.windows(after, stop)
    # Constant state on [after, stop): one window covering it all, or none.
    assert ws == ([Window(after, stop)] if state else [])
    if nxt is not None:
        assert cal.active_at(nxt) != state
    step = (stop - after) / 17
    for i in range(17):
        assert cal.active_at(after + step * i) == state


@PROPS
@given(specs=calendars(), start=instants)
def test_same_input_same_output(specs: dict[str, dict[str, Any]], start: datetime) -> None:
    end = start + timedelta(days=30)
    first = {k: c.windows(start, end) for k, c in build(specs).items()}
    second = {k: c.windows(start, end) for k, c in build(specs).items()}
    assert first == second


windows_lists = st.lists(
    st.tuples(instants, st.integers(min_value=1, max_value=5000)).map(
        lambda p: Window(p[0], p[0] + timedelta(minutes=p[1]))
    ),
    max_size=12,
).map(merge)


@settings(max_examples=150, deadline=None)
@given(a=windows_lists, b=windows_lists, t=st.lists(instants, min_size=1, max_size=20))
def test_interval_algebra_pointwise(a: list[Window], b: list[Window], t: list[datetime]) -> None:
    far = BASE + timedelta(days=400)
    for result in (union([a, b]), intersect(a, b), subtract(a, b)):
        assert normalised(result, BASE, far)
    for p in t + [w.start for w in a + b] + [w.end for w in a + b]:
        in_a, in_b = any(p in w for w in a), any(p in w for w in b)
        assert any(p in w for w in union([a, b])) == (in_a or in_b)
        assert any(p in w for w in intersect(a, b)) == (in_a and in_b)
        assert any(p in w for w in subtract(a, b)) == (in_a and not in_b)


def _field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values))) if values else "*"


cron_exprs = st.builds(
    lambda mi, h, dom, mon, dow: (
        f"{_field(mi)} {_field(h)} {_field(dom)} {_field(mon)} {_field(dow)}"
    ),
    st.lists(st.integers(0, 59), min_size=1, max_size=3),
    st.lists(st.integers(0, 23), max_size=3),
    st.lists(st.integers(1, 31), max_size=3),
    st.lists(st.integers(1, 12), max_size=3),
    st.lists(st.integers(0, 7), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(expr=cron_exprs, start=instants)
def test_fast_cron_walk_equals_croniter(expr: str, start: datetime) -> None:
    from croniter import CroniterBadDateError, croniter

    from daemon.calendar.sources import cron_times

    end = start + timedelta(days=45)
    ours = list(cron_times(expr, UTC, start, end))
    it = croniter(expr, start.replace(tzinfo=None) - timedelta(microseconds=1))
    theirs = []
    try:
        while (t := it.get_next(datetime).replace(tzinfo=UTC)) < end:
            theirs.append(t)
    except CroniterBadDateError:
        pass  # croniter gives up on dates that never come ("0 * 30 2 *": February 30)
    assert ours == theirs


@settings(max_examples=20, deadline=None)
@given(
    expr=st.sampled_from([*CRONS, "*/20 0-4 * * *", "0,30 1,2,3 * * *"]),
    zone=st.sampled_from(ZONES),
    start=instants,
)
def test_fast_offset_path_equals_localize_everywhere(expr: str, zone: str, start: datetime) -> None:
    """The per-day offset shortcut gives exactly what ``localize`` gives for every wall
    time, DST days included (the plan benchmark depends on the shortcut)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    from daemon.calendar.sources import cron_times
    from daemon.calendar.window import localize

    tz = ZoneInfo(zone)
    start = start.replace(month=3, day=1)  # cover the spring-forward and fall-back days
    end = start + timedelta(days=245)  # through early November
    ours = list(cron_times(expr, tz, start, end))
    it = croniter(expr, start.astimezone(tz).replace(tzinfo=None) - timedelta(days=2))
    theirs: list[datetime] = []
    while (at := localize(it.get_next(datetime), tz)) < end:
        if at >= start and (not theirs or theirs[-1] != at):
            theirs.append(at)
    assert ours == theirs

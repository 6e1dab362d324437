"""The grouped, streamed plan equals the plain per-workflow one, row for row and in order.

``iter_plan`` computes one timeline per group of workflows selected by the same rules and
makes the rows instant by instant; ``tests/support/plan_reference.py`` computes every
workflow on its own, sorts everything and edits the list for workflow overrides (what
``plan`` did before). Random small fleets (shared ids, unknown trigger states, non-cron
types), rules, overrides of all three kinds and schedules must give the same rows; so
must one fleet large enough to fill several chunks and merge many groups per instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.calendar import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.calendar.plan import (
    Plan,
    PlanItem,
    iter_plan,
    plan,
    plan_table_lines,
    plan_table_widths,
    render_plan_table,
)
from daemon.cli.cmd_plan import iter_mark_live
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override
from daemon.policy.schedule_spec import ScheduleSpec
from tests.support.plan_reference import reference_mark_live, reference_plan

TZ = "Europe/Berlin"
CALS = build_calendars(
    {
        k: CalendarSpec.model_validate(v)
        for k, v in {
            "freeze": {
                "timezone": TZ,
                "ranges": [{"start": "2026-12-21T00:00", "end": "2027-01-04T00:00"}],
            },
            "hol": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BY"}},
            "no-change": {"any_of": ["freeze", "hol"]},
            "night": {"timezone": TZ, "recurring": [{"cron": "0 22 * * *", "duration": "8h"}]},
            "shifts": {"timezone": "UTC", "recurring": [{"cron": "0 */6 * * *", "duration": "2h"}]},
            "biz": {
                "timezone": "America/New_York",
                "recurring": [{"cron": "0 9 * * mon-fri", "duration": "8h"}],
            },
        }.items()
    },
    Path("."),
)
CAL_NAMES = sorted(CALS)
BASE = datetime(2026, 12, 14, tzinfo=UTC)
IDS = ["w1", "w2", "w3", "w4", "w5", "w6"]
RULE_NAMES = ["r", "rule-b", "a-longer-rule", "the-longest-rule-d"]  # widths of the table
SCHEDULES = [
    ScheduleSpec.model_validate(
        {
            "name": name,
            "cron": cron,
            "timezone": TZ,
            "action": {"execute": {"workflow_name": "ax"}},
            "blocked_by": blocked,
            "catch_up": catch_up,
        }
    )
    for name, cron, blocked, catch_up in [
        ("a-hourly", "0 */5 * * *", ["hol"], "all"),
        ("b-daily", "0 22 * * *", ["freeze", "night"], "once"),
        ("c-shifts", "0 1 * * *", ["shifts"], "skip"),
    ]
]
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def rules(draw: st.DrawFn) -> list[TriggerRuleSpec]:
    out = []
    for n in range(draw(st.integers(min_value=0, max_value=4))):
        kind = draw(st.sampled_from(["names", "tags", "ids"]))
        select: dict[str, Any]
        if kind == "names":
            select = {"names": draw(st.lists(st.sampled_from(["*", "a*", "b?", "?x"]), min_size=1))}
        elif kind == "tags":
            select = {"tags": {"team": draw(st.sampled_from(["a", "b", "*"]))}}
        else:
            select = {"ids": draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=3))}
        mode = draw(st.sampled_from(["off_during", "on_only_during"]))
        spec = {"name": RULE_NAMES[n], "select": select, mode: draw(st.sampled_from(CAL_NAMES))}
        out.append(TriggerRuleSpec.model_validate(spec))
    return out


@st.composite
def workflows(draw: st.DrawFn) -> list[Workflow]:
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        team = draw(st.sampled_from(["a", "b", None]))
        out.append(
            Workflow(
                id=draw(st.sampled_from(IDS)),  # ids repeat: their order must hold too
                name=draw(st.sampled_from(["ax", "bx", "ab", "cx"])),
                type=draw(st.sampled_from(["cron", "cron", "", "manual"])),
                tags={"team": team} if team else {},
                trigger_status=draw(st.sampled_from(["enable", "disable", None, "weird"])),
            )
        )
    return out


@st.composite
def overrides(draw: st.DrawFn) -> list[Override]:
    out = []
    for n in range(draw(st.integers(min_value=0, max_value=3))):
        kind = draw(st.sampled_from(["workflow", "workflow", "rule", "calendar"]))
        target = draw(
            st.sampled_from(
                {"workflow": [*IDS, "nope"], "rule": RULE_NAMES[:3], "calendar": CAL_NAMES}[kind]
            )
        )
        start = draw(st.none() | st.integers(min_value=-48, max_value=300))
        begin = BASE + timedelta(hours=start or 0)
        until = begin + timedelta(hours=draw(st.integers(min_value=1, max_value=200)))
        ended = draw(st.none() | st.integers(min_value=0, max_value=100))
        out.append(
            Override(
                id=f"o{n}",
                target_kind=kind,  # type: ignore[arg-type]  # drawn from the literal's values
                target=target,
                state=draw(st.sampled_from(["on", "off", "hold"])),
                start=None if start is None else begin,
                until=until,
                ended_at=None if ended is None else begin + timedelta(hours=ended),
                ticket="CHG-1",
            )
        )
    return out


@PROPS
@given(
    rules(),
    workflows(),
    overrides(),
    st.lists(st.sampled_from(SCHEDULES), max_size=2, unique_by=lambda s: s.name),
    st.integers(min_value=0, max_value=30 * 24),
    st.integers(min_value=1, max_value=10 * 24),
    st.booleans(),
    st.sets(st.sampled_from(IDS)),
    st.sets(st.sampled_from(IDS)),
)
def test_grouped_plan_equals_the_per_workflow_plan(
    triggers: list[TriggerRuleSpec],
    wfs: list[Workflow],
    ovs: list[Override],
    schedules: list[ScheduleSpec],
    offset_h: int,
    length_h: int,
    known: bool,
    owned: set[str],
    held: set[str],
) -> None:
    start = BASE + timedelta(hours=offset_h)
    end = start + timedelta(hours=length_h)
    args = (CALS, triggers, schedules, wfs, start, end)
    want = reference_plan(*args, workflows_known=known, overrides=ovs)
    got = list(iter_plan(*args, workflows_known=known, overrides=ovs))
    assert got == want
    assert plan(*args, workflows_known=known, overrides=ovs) == want
    # `aomd plan --live`: the streamed marking, and the text table whose widths come
    # from the distinct rows, are those of the whole list
    live = reference_mark_live(want, wfs, triggers, owned, held)
    planned = Plan(*args, workflows_known=known, overrides=ovs)

    def mark(rows: Iterator[PlanItem]) -> Iterator[PlanItem]:
        return iter_mark_live(rows, wfs, triggers, owned, held)

    assert list(mark(planned.rows())) == live
    # the distinct rows: some of the rows, and every row's shape (all but the time and
    # the reason) among them
    distinct = list(planned.distinct_rows())
    assert set(distinct) <= set(want)
    assert {_shape(i) for i in distinct} == {_shape(i) for i in want}
    widths = plan_table_widths(mark(planned.distinct_rows()))
    assert "\n".join(plan_table_lines(mark(planned.rows()), widths)) == render_plan_table(live)


def _shape(item: PlanItem) -> PlanItem:
    return item._replace(at=BASE, reason=None)


def test_a_large_fleet_streams_the_same_rows_as_the_per_workflow_plan() -> None:
    """700 workflows: groups of hundreds (several chunks per instant), instants where
    many groups change at once (the freeze every one shares), a workflow override on one
    member of a big group, and the text table over it all."""
    teams = ["a", "b", "c", "d", "e"]
    wfs = [
        Workflow(
            id=f"wf-{(i * 7919) % 1000:04d}",  # given out of id order
            name=f"{['ax', 'bx', 'cx'][i % 3]}-{i}",
            type="cron",
            tags={"team": teams[(i // 3) % len(teams)]},
            trigger_status=["enable", "disable", None][i % 3],
        )
        for i in range(700)
    ]
    specs: list[dict[str, Any]] = [
        {"name": "freeze", "select": {"names": ["*"]}, "off_during": "no-change"},
        {"name": "nights", "select": {"tags": {"team": "a"}}, "on_only_during": "night"},
        {"name": "shifts", "select": {"tags": {"team": "b"}}, "off_during": "shifts"},
        {"name": "biz", "select": {"names": ["bx-*"]}, "on_only_during": "biz"},
        {"name": "few", "select": {"ids": [wfs[5].id, wfs[6].id]}, "off_during": "night"},
    ]
    triggers = [TriggerRuleSpec.model_validate(s) for s in specs]
    start, end = BASE, BASE + timedelta(days=24)
    ovs = [
        Override(
            id="hotfix",
            target_kind="workflow",
            target=wfs[9].id,
            state="on",
            start=BASE + timedelta(days=8),
            until=BASE + timedelta(days=9, hours=5),
        )
    ]
    args = (CALS, triggers, SCHEDULES, wfs, start, end)
    want = reference_plan(*args, overrides=ovs)
    got = list(iter_plan(*args, overrides=ovs))
    assert len(got) > 10_000
    assert got == want
    planned = Plan(*args, overrides=ovs)
    distinct = list(planned.distinct_rows())
    assert len(distinct) < len(got) / 5
    assert {_shape(i) for i in distinct} == {_shape(i) for i in want}
    table = "\n".join(plan_table_lines(planned.rows(), plan_table_widths(distinct)))
    assert table == render_plan_table(want)

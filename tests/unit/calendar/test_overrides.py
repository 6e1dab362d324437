"""Calendar overrides reshape the calendar and every calendar built on it
(``daemon.calendar.overrides``); the plan shows them and their effect."""

from __future__ import annotations

from datetime import timedelta

from daemon.calendar import Calendar, plan
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.kernel.overrides import Override
from tests.support.calendars import cron_workflow, trigger_rule, wall


def _ov(target: str, state: str, start_h: int, end_h: int, kind: str = "calendar") -> Override:
    return Override(
        id=f"ov-{target}-{state}",
        target_kind=kind,  # type: ignore[arg-type]  # the literal comes in as a str
        target=target,
        state=state,  # type: ignore[arg-type]  # idem
        start=wall(2026, 12, 22, start_h),
        until=wall(2026, 12, 22, end_h),
        ticket="CHG-9",
        reason="hotfix",
        who="alice",
    )


def test_an_off_override_lifts_the_calendar_and_its_unions(cals: dict[str, Calendar]) -> None:
    lifted = apply_calendar_overrides(cals, [_ov("freeze", "off", 9, 13)])
    assert apply_calendar_overrides(cals, []) is cals
    noon = wall(2026, 12, 22, 12)
    assert cals["freeze"].active_at(noon)
    assert cals["no-change"].active_at(noon)  # any_of [freeze, hol]
    assert not lifted["freeze"].active_at(noon)
    assert not lifted["no-change"].active_at(noon)  # the union follows its child
    assert lifted["freeze"].active_at(wall(2026, 12, 22, 13))  # expired by itself
    # The expiry is an ordinary transition: the reconciler wakes there.
    assert lifted["no-change"].next_transition(noon) == wall(2026, 12, 22, 13)
    assert lifted["night"] is cals["night"]  # untouched calendars are the same objects
    on = apply_calendar_overrides(cals, [_ov("night", "on", 9, 13)])
    assert on["night"].active_at(noon)


def test_plan_applies_rule_and_workflow_overrides(cals: dict[str, Calendar]) -> None:
    freeze = trigger_rule("freeze", {"names": ["*"]}, off_during="freeze")
    wfs = [cron_workflow("w1", trigger="disable"), cron_workflow("w2", trigger="disable")]
    start, end = wall(2026, 12, 22), wall(2026, 12, 23)
    overrides = [_ov("freeze", "on", 9, 11, kind="rule"), _ov("w2", "on", 14, 15, kind="workflow")]
    items = plan(cals, [freeze], [], wfs, start, end, overrides=overrides)
    w1 = [(i.at, i.enable) for i in items if i.workflow_id == "w1"]
    assert w1 == [(wall(2026, 12, 22, 9), True), (wall(2026, 12, 22, 11), False)]
    w2 = [(i.at, i.enable, i.rule) for i in items if i.workflow_id == "w2"]
    assert w2 == [
        (wall(2026, 12, 22, 9), True, "freeze"),  # the rule override counts for w2 too
        (wall(2026, 12, 22, 11), False, "freeze"),
        (wall(2026, 12, 22, 14), True, "override:ov-w2-on"),
        (wall(2026, 12, 22, 15), False, "override:ov-w2-on"),
    ]
    rows = [(i.at, i.reason) for i in items if i.kind == "override"]
    assert len(rows) == 4
    assert rows[0][1] is not None
    assert "CHG-9" in rows[0][1]
    assert start + timedelta(hours=9) <= rows[0][0]

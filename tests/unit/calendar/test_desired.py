"""Trigger rules: which rule a workflow falls under and whether its trigger should be on
(``daemon.calendar.desired``)."""

from __future__ import annotations

from daemon.calendar import (
    Calendar,
    desired_trigger,
    first_matching_rule,
    rule_matches,
)
from daemon.calendar.desired import selecting_rules, stricter_drift, stricter_manage, verdict
from tests.support.calendars import cron_workflow, trigger_rule, wall


def test_selector_all_criteria_must_match() -> None:
    r = trigger_rule(
        "r",
        {"ids": ["w1", "w2"], "names": ["patch-*"], "tags": {"team": "ops", "env": "prod*"}},
        off_during="x",
    )
    assert rule_matches(r, cron_workflow("w1", "patch-linux", {"team": "ops", "env": "prod-eu"}))
    assert not rule_matches(r, cron_workflow("w3", "patch-linux", {"team": "ops", "env": "prod"}))
    assert not rule_matches(r, cron_workflow("w1", "backup", {"team": "ops", "env": "prod"}))
    assert not rule_matches(r, cron_workflow("w1", "patch-linux", {"team": "ops"}))
    assert not rule_matches(r, cron_workflow("w1", "patch-linux", {"team": "dev", "env": "prod"}))


def test_first_matching_rule_wins() -> None:
    rules = [
        trigger_rule("db", {"tags": {"kind": "db"}}, on_only_during="night"),
        trigger_rule("all", {"names": ["*"]}, off_during="no-change"),
    ]
    assert first_matching_rule(rules, cron_workflow("a", tags={"kind": "db"})) is rules[0]
    assert first_matching_rule(rules, cron_workflow("b")) is rules[1]
    assert first_matching_rule(rules[:1], cron_workflow("b")) is None


def test_desired_trigger(cals: dict[str, Calendar]) -> None:
    off = trigger_rule("off", {"names": ["*"]}, off_during="no-change")
    on = trigger_rule("on", {"names": ["*"]}, on_only_during="night")
    christmas, normal = wall(2026, 12, 25, 12), wall(2026, 11, 10, 12)
    assert desired_trigger(off, cals, christmas) is False
    assert desired_trigger(off, cals, normal) is True
    assert desired_trigger(off, cron_workflow("a"), cals, normal) is True  # interfaces.md form
    assert desired_trigger(on, cals, wall(2026, 11, 10, 23)) is True
    assert desired_trigger(on, cals, normal) is False
    assert off.manage == "owned"
    assert off.drift == "correct"


def test_every_selecting_rule_votes_and_deny_beats_allow(cals: dict[str, Calendar]) -> None:
    allow = trigger_rule("cn", {"tags": {"region": "cn"}}, on_only_during="night", drift="report")
    freeze = trigger_rule("freeze", {"names": ["*"]}, off_during="freeze")
    other = trigger_rule("db", {"tags": {"kind": "db"}}, off_during="hol", manage="full")
    wf = cron_workflow("a", tags={"region": "cn"})
    assert selecting_rules([allow, freeze, other], wf) == (allow, freeze)
    christmas_night = wall(2026, 12, 24, 23)
    for order in ([allow, freeze], [freeze, allow]):
        v = verdict(order, cals, christmas_night)
        assert v.enable is False
        assert v.deciding is freeze
        assert v.overruled == (allow,)
        assert "deny beats allow of cn" in v.reason()
    later = verdict([allow, freeze], cals, wall(2027, 1, 10, 23))
    assert later.enable is True
    assert "rule cn: on (inside calendar night)" in later.reason()
    # Only rules that set manage/drift vote; the stricter one wins.
    assert verdict([allow, freeze], cals, christmas_night).drift == "report"
    assert (
        stricter_drift([allow, trigger_rule("c", {"ids": ["a"]}, off_during="x", drift="correct")])
        == "correct"
    )
    assert stricter_manage([other]) == "full"
    assert (
        stricter_manage([other, trigger_rule("o", {"ids": ["a"]}, off_during="x", manage="owned")])
        == "owned"
    )
    assert stricter_manage([freeze]) == "owned"

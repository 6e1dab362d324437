"""The documented example policy parses, builds and plans."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from daemon.calendar import build_calendars, build_schedule_sources, plan
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.kernel.model import Workflow
from daemon.policy.schedule_spec import ScheduleSpec

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "calendars.example.yaml"


def test_example_policy_builds_and_plans() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    cals = build_calendars(
        {k: CalendarSpec.model_validate(v) for k, v in doc["calendars"].items()}, EXAMPLE.parent
    )
    rules = [TriggerRuleSpec.model_validate(r) for r in doc["triggers"]]
    schedules = [ScheduleSpec.model_validate(s) for s in doc["schedules"]]
    assert {name for s in schedules for name in s.blocked_by} <= set(cals)
    assert {r.calendar for r in rules} <= set(cals)
    workflows = [
        Workflow(id="1", name="db-main", type="cron", tags={"kind": "db"}, trigger_status="enable"),
        Workflow(id="2", name="etl", type="cron", tags={"region": "cn"}, trigger_status="enable"),
        Workflow(id="3", name="web", type="cron", trigger_status="enable"),
    ]
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    items = plan(
        cals,
        rules,
        schedules,
        workflows,
        start,
        end,
        schedule_sources=build_schedule_sources(schedules, EXAMPLE.parent),
    )
    assert {i.rule for i in items if i.kind == "trigger"} <= {r.name for r in rules}
    # The CN rule stands before the global freeze, yet the freeze holds its workflows
    # (deny beats allow): nothing enables etl inside year-end-freeze.
    freeze = cals["year-end-freeze"]
    etl = [i for i in items if i.workflow_id == "2" and i.kind == "trigger"]
    assert etl
    assert not any(i.enable and freeze.active_at(i.at) for i in etl)
    assert any(not i.enable for i in etl)
    assert any(i.skipped for i in items if i.schedule == "nightly-backup")
    assert cals["change-freeze"].active_at(datetime(2026, 12, 25, 12, tzinfo=UTC))

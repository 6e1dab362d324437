"""Calendars, trigger rules and schedules: pure evaluation of time windows.

Import surface for the rest of aomd::

    from daemon.calendar import (Calendar, Window, build_calendars, desired_trigger,
                                 rule_matches, first_matching_rule, fire_times, plan,
                                 iter_plan, Plan)
    from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
"""

from daemon.calendar.build import build_calendars
from daemon.calendar.calendar import DEFAULT_HORIZON, Calendar
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.calendar.desired import (
    desired_trigger,
    first_matching_rule,
    rule_matches,
)
from daemon.calendar.firetimes import (
    Fire,
    build_schedule_sources,
    fire_times,
    next_fire,
)
from daemon.calendar.plan import Plan, PlanItem, iter_plan, plan, render_plan_table
from daemon.calendar.window import Window, localize

__all__ = [
    "DEFAULT_HORIZON",
    "Calendar",
    "CalendarSpec",
    "Fire",
    "Plan",
    "PlanItem",
    "TriggerRuleSpec",
    "Window",
    "build_calendars",
    "build_schedule_sources",
    "desired_trigger",
    "fire_times",
    "first_matching_rule",
    "iter_plan",
    "localize",
    "next_fire",
    "plan",
    "render_plan_table",
    "rule_matches",
]

"""Calendars and trigger-rule values shared by the calendar tests: Berlin wall time, a
freeze / holidays / nights set of calendars, trigger rules and cron workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daemon.calendar import Calendar, build_calendars
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.kernel.model import Workflow

TZ = "Europe/Berlin"


def wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Berlin wall-clock instant, as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin_calendars() -> dict[str, Calendar]:
    """A Christmas freeze, Bavarian holidays, either of them, and 22:00-06:00 nights."""
    specs = {
        "freeze": {
            "timezone": TZ,
            "ranges": [{"start": "2026-12-21T00:00", "end": "2027-01-04T00:00"}],
        },
        "hol": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BY"}},
        "no-change": {"any_of": ["freeze", "hol"]},
        "night": {"timezone": TZ, "recurring": [{"cron": "0 22 * * *", "duration": "8h"}]},
    }
    return build_calendars({k: CalendarSpec.model_validate(v) for k, v in specs.items()}, Path("."))


def trigger_rule(name: str, select: dict[str, Any], **kw: Any) -> TriggerRuleSpec:
    return TriggerRuleSpec.model_validate({"name": name, "select": select, **kw})


def cron_workflow(
    id: str, name: str = "", tags: dict[str, str] | None = None, trigger: str | None = "enable"
) -> Workflow:
    return Workflow(id=id, name=name or id, type="cron", tags=tags or {}, trigger_status=trigger)

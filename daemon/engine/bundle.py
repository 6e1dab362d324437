"""The policy snapshot the engine runs on: a loaded ``PolicySet`` plus derived views.

Everything derived from the files (built calendars, parsed ICS schedules) is computed at
load time, so a reload either yields a complete new snapshot or is rejected whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.policy import PolicySet, Rule, ScheduleSpec, load_policy_dir


@dataclass(frozen=True, slots=True)
class Bundle:
    policy: PolicySet

    @property
    def rules(self) -> Sequence[Rule]:
        return self.policy.rules

    @property
    def calendars(self) -> Mapping[str, Calendar]:
        return self.policy.built_calendars

    @property
    def triggers(self) -> Sequence[TriggerRuleSpec]:
        return self.policy.triggers

    @property
    def schedules(self) -> Sequence[ScheduleSpec]:
        return self.policy.schedules

    @property
    def sources(self) -> Mapping[str, Any]:
        return self.policy.schedule_sources

    @property
    def webhook(self) -> str | None:
        return self.policy.webhook

    def next_trigger_transition(self, after: datetime) -> datetime | None:
        """The first instant after ``after`` where any trigger rule's calendar flips."""
        best: datetime | None = None
        for name in {rule.calendar for rule in self.triggers}:
            cal = self.calendars.get(name)
            t = cal.next_transition(after) if cal is not None else None
            if t is not None and (best is None or t < best):
                best = t
        return best


def load_bundle(root: Path) -> Bundle:
    """Raise ``ConfigError`` (with file:line) on any problem; never a half-loaded policy."""
    return Bundle(load_policy_dir(root))

"""``PolicySet``: every policy file merged into one immutable snapshot.

The engine swaps whole snapshots on reload (``daemon.engine.reload``), so everything
derived from the files (runtime calendars, parsed schedule iCalendars, frozen rules) is
built once here and a half-valid policy can never be in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override
from daemon.policy.file_spec import NotifySpec
from daemon.policy.rule import Rule
from daemon.policy.schedule_spec import ScheduleSpec
from daemon.policy.scope import in_scope

__all__ = ["PolicySet"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySet:
    """Files merged in sorted file-name order; rules keep file order (execution rules: the
    first match picks the action; trigger rules: every selecting rule counts)."""

    rules: tuple[Rule, ...] = ()
    calendars: Mapping[str, CalendarSpec] = field(default_factory=dict)
    """Calendar specs by name (``ics`` paths made absolute)."""
    triggers: tuple[TriggerRuleSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    notify: NotifySpec = field(default_factory=NotifySpec)
    built_calendars: Mapping[str, Calendar] = field(default_factory=dict)
    """Runtime calendars (``daemon.calendar.build_calendars``) for ``decide`` and triggers."""
    schedule_sources: Mapping[str, Any] = field(default_factory=dict)
    """Parsed iCalendar of ``ics`` schedules (``daemon.calendar.build_schedule_sources``)."""
    trigger_where: Mapping[str, str] = field(default_factory=dict)
    """Trigger rule name -> ``file:line``, for ``aomd explain``."""
    overrides: tuple[Override, ...] = ()
    """From ``overrides:`` sections (who = ``policy:<file:line>``)."""
    warnings: tuple[str, ...] = ()
    """Valid but almost certainly unintended, ``file:line: ...`` where known: skipped or
    zero-length .ics events, ignored files, an empty secret, ... (``daemon.policy.warnings``
    and the calendar loaders), or trigger rules that relied on first-match
    (``daemon.policy.overlaps``). Reported, never refused: ``aomd validate`` prints them and
    the daemon logs them as ``policy_warning``."""

    @property
    def webhook(self) -> str | None:
        """The global notification webhook, if any."""
        return self.notify.webhook

    def summary(self) -> str:
        return ", ".join(
            _count(n, what)
            for n, what in (
                (len(self.rules), "rule"),
                (len(self.calendars), "calendar"),
                (len(self.triggers), "trigger rule"),
                (len(self.schedules), "schedule"),
            )
        )

    def for_account(self, account: str) -> PolicySet:
        """The rules, trigger rules and schedules that apply to ``account`` (``accounts:``
        empty or naming it); the rest of the snapshot is shared."""
        if not (
            any(r.accounts for r in self.rules)
            or any(t.accounts for t in self.triggers)
            or any(s.accounts for s in self.schedules)
        ):
            return self
        return replace(
            self,
            rules=tuple(r for r in self.rules if not r.accounts or account in r.accounts),
            triggers=tuple(t for t in self.triggers if not t.accounts or account in t.accounts),
            schedules=tuple(s for s in self.schedules if not s.accounts or account in s.accounts),
        )

    def watches(self, workflow: Workflow) -> bool:
        """Could an execution rule apply to this workflow? (Scopes the watcher's polling.)"""
        return in_scope(self.rules, workflow)


def _count(n: int, noun: str) -> str:
    """``1 trigger rule``, ``2 trigger rules``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"

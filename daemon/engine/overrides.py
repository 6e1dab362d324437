"""The overrides the engine obeys: the journal's (``aomd override add``) and the policy's.

Re-read from the journal on every trigger pass and checked on every heartbeat of the
trigger loop (one small SQLite read), so an override added or ended on the command line
reaches a running daemon within seconds, without a restart or a signal; the ops HTTP
server stays read-only. Each override is logged (and notified) once when it comes into
force and once when it expires or is ended; expiry needs nothing to run, since every
reader asks ``Override.active_at``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.engine.notify import Notifier
from daemon.journal.store import Journal
from daemon.kernel.overrides import Override, OverrideTarget, active_overrides, latest_for
from daemon.policy import PolicySet
from daemon.policy.rule import Rule

log = structlog.get_logger("aomd.overrides")

__all__ = ["OverrideBook"]


class OverrideBook:
    def __init__(self, *, journal: Journal, notifier: Notifier | None = None) -> None:
        self.journal = journal
        self.notifier = notifier
        self.stored: tuple[Override, ...] = ()
        self.current: tuple[Override, ...] = ()
        self._announced: set[str] = set()
        self._gone: set[str] = set()
        self._memo: tuple[object, tuple[Override, ...], Mapping[str, Calendar]] | None = None

    async def changed(self) -> bool:
        """Did ``aomd override`` add or end one since the last ``refresh``?"""
        return tuple(await self.journal.overrides()) != self.stored

    async def refresh(self, policy: PolicySet, now: datetime) -> tuple[Override, ...]:
        self.stored = tuple(await self.journal.overrides())
        self.current = (*policy.overrides, *self.stored)
        for o in self.current:
            if o.active_at(now) and o.id not in self._announced:
                self._announced.add(o.id)
                self._tell("override_active", o, now)
            elif o.id in self._announced and not o.active_at(now) and o.id not in self._gone:
                self._gone.add(o.id)
                self._tell("override_ended" if o.ended_at else "override_expired", o, now)
        return self.current

    def _tell(self, kind: str, o: Override, now: datetime) -> None:
        log.info(
            kind,
            override=o.id,
            target_kind=o.target_kind,
            target=o.target,
            state=o.state,
            until=o.until.isoformat(),
            ticket=o.ticket,
            who=o.who,
            reason=o.reason,
        )
        if self.notifier is not None:
            self.notifier.notify(
                kind,
                {
                    "override": o.id,
                    "target_kind": o.target_kind,
                    "target": o.target,
                    "state": o.state,
                    "until": o.until.isoformat(),
                    "ticket": o.ticket,
                    "who": o.who,
                    "reason": o.reason,
                    "at": now.isoformat(),
                },
            )

    def calendars(self, policy: PolicySet) -> Mapping[str, Calendar]:
        """The policy's calendars with calendar overrides applied (rebuilt only when the
        policy or the overrides change, so the calendars' memos keep working)."""
        memo = self._memo
        if memo is not None and memo[0] is policy and memo[1] == self.current:
            return memo[2]
        built = apply_calendar_overrides(policy.built_calendars, self.current)
        self._memo = (policy, self.current, built)
        return built

    def rules(self, rules: Sequence[Rule], now: datetime) -> list[Rule]:
        """Execution rules with an ``on`` override act regardless of their calendar gate."""
        active = active_overrides(self.current, now)
        out = []
        for rule in rules:
            mine = latest_for(active, "rule", rule.name)
            if mine is not None and mine.state == "on" and rule.gate is not None:
                rule = dataclasses.replace(rule, gate_inside=None, gate_outside=None)
            out.append(rule)
        return out

    def held(self, workflow_id: str, rule: str | None, now: datetime) -> Override | None:
        """The override holding an action of ``rule`` on ``workflow_id``, if any: the
        workflow's ``hold``/``off``, or the rule's ``hold``/``off``."""
        active = active_overrides(self.current, now)
        pairs: tuple[tuple[OverrideTarget, str | None], ...] = (
            ("workflow", workflow_id),
            ("rule", rule),
        )
        for kind, target in pairs:
            if target is None:
                continue
            mine = latest_for(active, kind, target)
            if mine is not None and mine.state in ("hold", "off"):
                return mine
        return None

"""Overrides: a person's time-boxed exception that wins over calendars.

An override names one target (a workflow id, a rule name or a calendar name), a state
and an expiry. ``on``/``off`` force a trigger (or a rule's vote, or a calendar's
activity); ``hold`` leaves a workflow or a rule's workflows alone (no trigger change, no
action on stopped nodes). It expires by itself at ``until``: nothing has to run for that,
because every reader asks ``active_at(t)``, which is why an override that expires while
the daemon is down is simply not in force when it returns.

They come from the journal (``aomd override add``: who is the OS user, with ticket and
reason) and from policy files (``overrides:``, for GitOps). Pure values, in the kernel
because the calendar, policy and engine layers all read them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Literal

__all__ = ["Override", "OverrideState", "OverrideTarget", "active_overrides"]

OverrideTarget = Literal["workflow", "rule", "calendar"]
OverrideState = Literal["on", "off", "hold"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    id: str
    target_kind: OverrideTarget
    target: str
    state: OverrideState
    until: datetime
    """Aware UTC; the override is in force on ``[start, until)``."""
    start: datetime | None = None
    """None: in force from the beginning of time (a policy-file override)."""
    ticket: str = ""
    reason: str = ""
    who: str = ""
    """The OS user who added it, or ``policy:<file:line>``."""
    ended_at: datetime | None = None
    ended_by: str | None = None

    def active_at(self, t: datetime) -> bool:
        if self.start is not None and t < self.start:
            return False
        end = self.until if self.ended_at is None else min(self.until, self.ended_at)
        return t < end

    @property
    def end(self) -> datetime:
        """When it stops being in force (expiry, or an earlier ``override end``)."""
        return self.until if self.ended_at is None else min(self.until, self.ended_at)

    def describe(self) -> str:
        """One line for logs, plans and ``status``."""
        ticket = f" {self.ticket}" if self.ticket else ""
        who = f" by {self.who}" if self.who else ""
        why = f": {self.reason}" if self.reason else ""
        return (
            f"override {self.id}{ticket} ({self.target_kind} {self.target} {self.state} until "
            f"{self.until.isoformat().replace('+00:00', 'Z')}{who}){why}"
        )

    def ended(self, at: datetime, by: str) -> Override:
        return replace(self, ended_at=at, ended_by=by)

    def dumps(self) -> str:
        doc = asdict(self)
        for k in ("until", "start", "ended_at"):
            value = doc[k]
            doc[k] = None if value is None else value.astimezone(UTC).isoformat()
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Override:
        doc = json.loads(text)
        for k in ("until", "start", "ended_at"):
            if doc.get(k) is not None:
                doc[k] = datetime.fromisoformat(doc[k])
        return cls(**doc)


def active_overrides(overrides: Iterable[Override], t: datetime) -> list[Override]:
    """Those in force at ``t``, oldest first (a later one on the same target wins)."""
    found = [o for o in overrides if o.active_at(t)]
    return sorted(found, key=lambda o: (o.start or datetime.min.replace(tzinfo=UTC), o.id))


def latest_for(overrides: Sequence[Override], kind: OverrideTarget, target: str) -> Override | None:
    """The override that decides for one target: the most recently started one."""
    mine = [o for o in overrides if o.target_kind == kind and o.target == target]
    return mine[-1] if mine else None

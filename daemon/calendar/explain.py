"""Why a workflow's trigger is (or will be) on or off at an instant, rule by rule.

Pure: the answer ``aomd explain`` and ``aomd status`` print, built from the same pieces
the reconciler and the plan use (every selecting rule votes, overrides win), so what it
says is what the daemon does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import selecting_rules, verdict
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.calendar.plan import plan
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override, active_overrides, latest_for

__all__ = ["Explanation", "explain_trigger"]

LOOKAHEAD = timedelta(days=366)
"""How far ahead the next transition is looked for."""
_CONTEXT = timedelta(days=62)


@dataclass(frozen=True, slots=True)
class RuleLine:
    rule: str
    where: str
    vote: str
    """``on`` / ``off`` / ``hold``."""
    why: str


@dataclass(frozen=True, slots=True)
class Explanation:
    workflow_id: str
    workflow_name: str
    at: datetime
    managed: bool
    desired: bool | None
    """None: no rule manages it, or an override holds it."""
    observed: bool | None
    rules: tuple[RuleLine, ...]
    overrides: tuple[Override, ...]
    manage: str = ""
    drift: str = ""
    next_change: datetime | None = None
    next_state: bool | None = None
    next_why: str = ""
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat().replace("+00:00", "Z")

        return {
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "at": iso(self.at),
            "managed": self.managed,
            "desired": self.desired,
            "observed": self.observed,
            "summary": self.summary,
            "manage": self.manage,
            "drift": self.drift,
            "rules": [
                {"rule": r.rule, "where": r.where, "vote": r.vote, "why": r.why} for r in self.rules
            ],
            "overrides": [o.describe() for o in self.overrides],
            "next_change": iso(self.next_change),
            "next_state": self.next_state,
            "next_why": self.next_why,
        }

    def render(self) -> str:
        def onoff(v: bool | None) -> str:
            return "unknown" if v is None else ("ON" if v else "OFF")

        head = (
            f"workflow {self.workflow_name} ({self.workflow_id}) at {self.at:%Y-%m-%d %H:%M:%S} UTC"
        )
        lines = [head, f"  trigger: {self.summary}"]
        if self.managed:
            lines.append(f"  observed now: {onoff(self.observed)}")
        for r in self.rules:
            where = f" [{r.where}]" if r.where else ""
            lines.append(f"  rule {r.rule}{where}: {r.vote} - {r.why}")
        for o in self.overrides:
            lines.append(f"  {o.describe()}")
        if self.managed:
            lines.append(
                f"  manage: {self.manage}, drift: {self.drift} (the stricter of the rules)"
            )
        if self.next_change is not None:
            lines.append(
                f"  next change: {self.next_change:%Y-%m-%d %H:%M:%S} UTC -> "
                f"{onoff(self.next_state)} ({self.next_why})"
            )
        elif self.managed:
            lines.append(f"  next change: none within {LOOKAHEAD.days} days")
        return "\n".join(lines)


def _next_why(reason: str, rule: str) -> str:
    return (
        reason
        if f"rule {rule}" in reason or rule.startswith("override:")
        else (f"{reason} (rule {rule})")
    )


def _state_text(described: str) -> str:
    """``rule x: on (calendar c inactive)`` -> ``calendar c inactive``."""
    text = described.split(": ", 1)[1]
    return text.split(" ", 1)[1].strip("()") if " " in text else text


def _window_text(cal: Calendar, at: datetime) -> str:
    """The calendar window around ``at`` (or the next one), for people."""
    for w in cal.windows(at - _CONTEXT, at + _CONTEXT):
        if w.start <= at < w.end:
            return f"window {w.start:%Y-%m-%d %H:%M} - {w.end:%Y-%m-%d %H:%M} UTC"
        if w.start > at:
            return f"next window {w.start:%Y-%m-%d %H:%M} - {w.end:%Y-%m-%d %H:%M} UTC"
    return "no window within 62 days"


def explain_trigger(
    workflow: Workflow,
    rules: Sequence[TriggerRuleSpec],
    calendars: Mapping[str, Calendar],
    overrides: Sequence[Override],
    at: datetime,
    where: Mapping[str, str] | None = None,
) -> Explanation:
    """Rule by rule: what each selecting rule wants at ``at`` and why, the overrides in
    force, the combined answer, and the next change (from the plan, overrides included)."""
    where = where or {}
    cals = apply_calendar_overrides(calendars, overrides)
    active = active_overrides(overrides, at)
    selecting = selecting_rules(rules, workflow)
    mine = [
        o
        for o in active
        if (o.target_kind == "workflow" and o.target == workflow.id)
        or (o.target_kind == "rule" and o.target in {r.name for r in selecting})
        or (o.target_kind == "calendar" and o.target in {r.calendar for r in selecting})
    ]
    base = Explanation(
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        at=at,
        managed=bool(selecting) and workflow.type in ("cron", ""),
        desired=None,
        observed=workflow.trigger_enabled,
        rules=(),
        overrides=tuple(mine),
    )
    if not base.managed:
        why = (
            "not a cron workflow: no trigger to switch"
            if selecting
            else "no trigger rule selects this workflow; aomd never touches its trigger"
        )
        return dataclasses.replace(base, summary=why)
    forced = {o.target: o.state for o in active if o.target_kind == "rule"}
    votes = verdict(selecting, cals, at, {k: v == "on" for k, v in forced.items() if v != "hold"})
    lines = []
    for vote in votes.votes:
        cal = cals[vote.rule.calendar]
        state = "hold" if forced.get(vote.rule.name) == "hold" else ("on" if vote.want else "off")
        lines.append(
            RuleLine(
                vote.rule.name,
                where.get(vote.rule.name, ""),
                state,
                f"{_state_text(vote.describe())}; {_window_text(cal, at)}",
            )
        )
    held = [r.rule for r in lines if r.vote == "hold"]
    wo = latest_for(active, "workflow", workflow.id)
    if (wo is not None and wo.state == "hold") or held:
        desired = None
        summary = (
            "HELD: aomd leaves it as it is ("
            + (wo.describe() if wo is not None and wo.state == "hold" else f"rule {held[0]} held")
            + ")"
        )
    elif wo is not None:
        desired = wo.state == "on"
        summary = f"{'ON' if desired else 'OFF'} by {wo.describe()}"
    else:
        desired = votes.enable
        if desired:
            summary = "ON: every selecting rule allows it"
        else:
            deny = [v.rule.name for v in votes.votes if not v.want]
            allow = [r.name for r in votes.overruled]
            summary = f"OFF: denied by {', '.join(deny)}" + (
                f" (deny beats allow of {', '.join(allow)})" if allow else ""
            )
    nxt = [
        i
        for i in plan(cals, selecting, [], [workflow], at, at + LOOKAHEAD, overrides=overrides)
        if i.kind == "trigger" and not i.initial and i.workflow_id == workflow.id
    ]
    change = next((i for i in nxt if i.enable != desired), None)
    return dataclasses.replace(
        base,
        desired=desired,
        rules=tuple(lines),
        manage="full" if wo is not None else votes.manage,
        drift=votes.drift,
        summary=summary,
        next_change=None if change is None else change.at,
        next_state=None if change is None else change.enable,
        next_why="" if change is None else _next_why(change.reason or "", change.rule or ""),
    )

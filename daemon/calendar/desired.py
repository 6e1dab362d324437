"""Trigger rules: which rules select a workflow and whether its trigger should be on.

Every rule that selects a workflow counts: the trigger is on only when each of them allows
it, off as soon as one wants it off (deny beats allow, as Argo CD's sync windows), and
``manage``/``drift`` conflicts resolve to the stricter. Rules used to be first-match, so a
narrower allow rule placed before a catch-all freeze silently escaped the freeze.

Pure functions over the frozen ``TriggerRuleSpec`` values of the policy snapshot. Deciding
*whether to act* (observed vs desired, ``manage: owned`` needing the journal's record of
who disabled a trigger, ``drift: report``) is the trigger reconciler's job; these answer
only "which rule" and "what is desired at t".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, overload

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.kernel.model import Workflow
from daemon.kernel.workflow_match import workflow_matches

__all__ = [
    "Verdict",
    "Vote",
    "desired_trigger",
    "first_matching_rule",
    "rule_matches",
    "selecting_rules",
    "stricter_drift",
    "stricter_manage",
    "verdict",
]


def rule_matches(rule: TriggerRuleSpec, workflow: Workflow) -> bool:
    """Does ``rule`` select ``workflow``?"""
    select = rule.select
    return workflow_matches(
        workflow.id, workflow, ids=select.ids, names=select.names, tags=select.tags.items()
    )


def first_matching_rule(
    rules: Sequence[TriggerRuleSpec], workflow: Workflow
) -> TriggerRuleSpec | None:
    """The first rule in policy order that selects the workflow (what decided alone before
    deny-beats-allow; still the rule named when every selecting rule allows)."""
    for rule in rules:
        if rule_matches(rule, workflow):
            return rule
    return None


@overload
def desired_trigger(
    rule: TriggerRuleSpec, calendars: Mapping[str, Calendar], t: datetime, /
) -> bool: ...


@overload
def desired_trigger(
    rule: TriggerRuleSpec,
    workflow: Workflow,
    calendars: Mapping[str, Calendar],
    t: datetime,
    /,
) -> bool: ...


def desired_trigger(rule: TriggerRuleSpec, *args: object) -> bool:
    """Should the trigger of a workflow managed by ``rule`` be enabled at ``t``?

    Call as ``desired_trigger(rule, calendars, t)`` or
    ``desired_trigger(rule, workflow, calendars, t)``; the workflow does not change the
    answer (check ``rule_matches`` first). Raises ``KeyError`` for an unknown calendar,
    which a policy that passed validation cannot contain.
    """
    if len(args) == 3:
        _workflow, calendars, t = args
    elif len(args) == 2:
        calendars, t = args
    else:
        raise TypeError("desired_trigger(rule, [workflow,] calendars, t)")
    if not isinstance(t, datetime) or not isinstance(calendars, Mapping):
        raise TypeError("desired_trigger(rule, [workflow,] calendars: Mapping, t: datetime)")
    active = calendars[rule.calendar].active_at(t)
    return not active if rule.off_during is not None else active


def selecting_rules(
    rules: Sequence[TriggerRuleSpec], workflow: Workflow
) -> tuple[TriggerRuleSpec, ...]:
    """Every rule that selects ``workflow``, in policy order. All of them count: a
    trigger is on only when each allows it (deny beats allow), so a catch-all freeze
    placed after a narrower allow rule still holds."""
    return tuple(rule for rule in rules if rule_matches(rule, workflow))


def stricter_manage(rules: Sequence[TriggerRuleSpec]) -> Literal["owned", "full"]:
    """``owned`` wins over ``full``: re-enabling only what aomd disabled keeps a trigger
    off more often. Only rules that set ``manage`` vote, so a catch-all freeze left at the
    default does not quietly downgrade a narrower rule's explicit choice."""
    said = {r.manage for r in rules if "manage" in r.model_fields_set}
    if not said:
        return "owned"
    return "owned" if "owned" in said else "full"


def stricter_drift(rules: Sequence[TriggerRuleSpec]) -> Literal["correct", "report"]:
    """``correct`` wins over ``report``: a trigger someone re-enabled inside a freeze is
    disabled again if any rule that says so selects it (only explicit settings vote)."""
    said = {r.drift for r in rules if "drift" in r.model_fields_set}
    if not said:
        return "correct"
    return "correct" if "correct" in said else "report"


@dataclass(frozen=True, slots=True)
class Vote:
    """What one selecting rule wants at one instant."""

    rule: TriggerRuleSpec
    want: bool
    active: bool
    """Is the rule's calendar active at the instant."""
    forced: bool = False
    """The vote comes from an override on the rule, not from its calendar."""

    def describe(self) -> str:
        if self.forced:
            return f"rule {self.rule.name}: {'on' if self.want else 'off'} (overridden)"
        cal = self.rule.calendar
        if self.rule.off_during is not None:
            state = f"calendar {cal} active" if self.active else f"calendar {cal} inactive"
        else:
            state = f"inside calendar {cal}" if self.active else f"outside calendar {cal}"
        return f"rule {self.rule.name}: {'on' if self.want else 'off'} ({state})"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every selecting rule's vote at one instant and the combined answer."""

    enable: bool
    votes: tuple[Vote, ...]
    manage: Literal["owned", "full"]
    drift: Literal["correct", "report"]

    @property
    def deciding(self) -> TriggerRuleSpec:
        """The first rule that wants the trigger off when it is off, else the first rule."""
        for vote in self.votes:
            if vote.want == self.enable:
                return vote.rule
        return self.votes[0].rule

    @property
    def overruled(self) -> tuple[TriggerRuleSpec, ...]:
        """Rules that would allow the trigger but are outvoted by a deny."""
        return tuple(v.rule for v in self.votes if v.want and not self.enable)

    def reason(self) -> str:
        deny = [v for v in self.votes if not v.want]
        if deny:
            text = "; ".join(v.describe() for v in deny)
            if self.overruled:
                names = ", ".join(r.name for r in self.overruled)
                text += f"; deny beats allow of {names}"
            return text
        return "; ".join(v.describe() for v in self.votes)


def verdict(
    rules: Sequence[TriggerRuleSpec],
    calendars: Mapping[str, Calendar],
    t: datetime,
    forced: Mapping[str, bool] | None = None,
) -> Verdict:
    """The combined desired state of a trigger selected by ``rules`` (non-empty) at ``t``.
    ``forced`` (rule name -> vote) are rule overrides in force at ``t``."""
    if not rules:
        raise ValueError("verdict needs at least one selecting rule")
    votes = []
    for rule in rules:
        active = calendars[rule.calendar].active_at(t)
        want = (not active) if rule.off_during is not None else active
        overridden = forced is not None and rule.name in forced
        if forced is not None and overridden:
            want = forced[rule.name]
        votes.append(Vote(rule, want, active, overridden))
    return Verdict(
        all(v.want for v in votes), tuple(votes), stricter_manage(rules), stricter_drift(rules)
    )

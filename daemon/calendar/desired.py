"""Trigger rules: which workflows a rule manages and whether their trigger should be on.

Pure functions over the frozen ``TriggerRuleSpec`` values of the policy snapshot. Deciding
*whether to act* (observed vs desired, ``manage: owned`` needing the journal's record of
who disabled a trigger, ``drift: report``) is the trigger reconciler's job; these answer
only "which rule" and "what is desired at t".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import overload

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.kernel.model import Workflow
from daemon.kernel.workflow_match import workflow_matches

__all__ = [
    "desired_trigger",
    "first_matching_rule",
    "rule_matches",
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
    """Rules are ordered; the first that selects the workflow owns its trigger."""
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

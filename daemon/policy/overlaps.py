"""Warnings for trigger rules that relied on first-match, for ``aomd validate``.

Trigger rules used to be first-match: a narrow rule placed before a catch-all freeze kept
its workflows out of the freeze. Now every selecting rule counts (deny beats allow), which
changes what such files do, so each pair of rules that can select the same workflow and
follow different calendars is named, with where both are, for a person to confirm.

Selectors are compared without the workflows, so "can select the same workflow" errs on
the side of yes where it cannot tell (two wildcard globs, ids against names). A rule
written for deny-beats-allow says so with ``overlap_ok: true`` and is not warned about.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping, Sequence

from daemon.calendar.calendar_spec import TriggerRuleSpec, WorkflowSelector

__all__ = ["first_match_warnings"]

_WILD = frozenset("*?[")


def _globs_meet(a: Collection[str], b: Collection[str]) -> bool:
    """Could one value match a glob of ``a`` and a glob of ``b``? (Empty = anything.)"""
    if not a or not b:
        return True
    for x in a:
        for y in b:
            if fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(y, x):
                return True
            if _WILD & set(x) and _WILD & set(y):
                return True  # two patterns: assume some name fits both
    return False


def may_overlap(a: WorkflowSelector, b: WorkflowSelector) -> bool:
    """Could some workflow meet both selectors?"""
    if a.ids and b.ids and not set(a.ids) & set(b.ids):
        return False
    if not _globs_meet(a.names, b.names):
        return False
    common = a.tags.keys() & b.tags.keys()
    return all(_globs_meet((a.tags[k],), (b.tags[k],)) for k in common)


def _follows(rule: TriggerRuleSpec) -> str:
    mode = "off_during" if rule.off_during is not None else "on_only_during"
    return f"{mode}: {rule.calendar}"


def first_match_warnings(
    triggers: Sequence[TriggerRuleSpec], where: Mapping[str, str]
) -> list[str]:
    """One line per earlier/later pair that can select one workflow on different terms."""
    out: list[str] = []
    for i, first in enumerate(triggers):
        for later in triggers[i + 1 :]:
            same_terms = (first.off_during, first.on_only_during) == (
                later.off_during,
                later.on_only_during,
            )
            if same_terms or first.overlap_ok or later.overlap_ok:
                continue
            if not may_overlap(first.select, later.select):
                continue
            out.append(
                f"{where.get(later.name, '?')}: triggers: rule {later.name!r} ({_follows(later)}) "
                f"and rule {first.name!r} ({_follows(first)}, at {where.get(first.name, '?')}) "
                "can select the same workflow. Both count now (deny beats allow): its trigger "
                f"is on only while both allow it; before, {first.name!r} alone decided (first "
                f"match). If the workflows of {first.name!r} should escape {later.name!r}, "
                f"narrow the select of {later.name!r}; if they should not, set overlap_ok: "
                "true on either rule."
            )
    return out

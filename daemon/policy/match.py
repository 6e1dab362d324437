"""Which workflows the execution rules could apply to (scopes the watcher's polling).

Only the workflow criteria of a rule are known before an execution is seen; node, status
and output criteria are judged by ``decide``. A workflow no rule can match is not polled,
which keeps API cost proportional to the workflows that matter.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from daemon.kernel.model import Workflow
from daemon.policy.rule import Rule

__all__ = ["in_scope", "workflow_matches"]


def workflow_matches(rule: Rule, workflow: Workflow) -> bool:
    """Every workflow criterion the rule gives (ids, name glob, tag globs) matches."""
    if rule.workflow_ids and workflow.id not in rule.workflow_ids:
        return False
    if rule.workflow_name is not None and not fnmatch.fnmatchcase(
        workflow.name, rule.workflow_name
    ):
        return False
    for key, pattern in rule.workflow_tags:
        value = workflow.tags.get(key)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


def in_scope(rules: Sequence[Rule], workflow: Workflow) -> bool:
    """Could any rule apply to an execution of ``workflow``?"""
    return any(workflow_matches(rule, workflow) for rule in rules)

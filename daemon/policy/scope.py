"""Which workflows the execution rules could apply to (scopes the watcher's polling).

Only the workflow criteria of a rule are known before an execution is seen; node, status
and output criteria are judged by ``decide``. A workflow no rule can match is not polled,
which keeps API cost proportional to the workflows that matter.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.kernel.model import Workflow
from daemon.policy.rule import Rule

__all__ = ["in_scope"]


def in_scope(rules: Sequence[Rule], workflow: Workflow) -> bool:
    """Could any rule apply to an execution of ``workflow``?"""
    return any(rule.matches_workflow(workflow.id, workflow) for rule in rules)

"""Does a workflow meet a rule's workflow criteria: ids, name globs, tag globs.

Execution rules (``decide``, and the watcher's polling scope) and trigger rules (the
calendar's ``first_matching_rule``) select workflows the same way, so they share this one
matcher; it lives in the kernel because it judges a kernel ``Workflow`` and both the
policy and the calendar package need it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable

from daemon.kernel.model import Workflow

__all__ = ["workflow_matches"]


def workflow_matches(
    workflow_id: str,
    workflow: Workflow | None,
    *,
    ids: Collection[str] = (),
    names: Collection[str] = (),
    tags: Iterable[tuple[str, str]] = (),
) -> bool:
    """Every criterion given must match; within ``ids`` and ``names`` any one may.

    Names and tag values are case-sensitive shell-style globs. ``workflow`` may be None
    when only the id is known (an execution names its workflow before the definition is
    listed): then ``ids`` is still judged, and a name or tag criterion does not match.
    """
    if ids and workflow_id not in ids:
        return False
    if names and (
        workflow is None or not any(fnmatch.fnmatchcase(workflow.name, g) for g in names)
    ):
        return False
    for key, pattern in tags:
        value = workflow.tags.get(key) if workflow is not None else None
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True

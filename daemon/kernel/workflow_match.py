"""Does a workflow meet a rule's workflow criteria: ids, name globs, tag globs.

Execution rules (``decide``, and the watcher's polling scope) and trigger rules (the
calendar's ``first_matching_rule``) select workflows the same way, so they share this one
matcher; it lives in the kernel because it judges a kernel ``Workflow`` and both the
policy and the calendar package need it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable

from daemon.kernel.model import Workflow

__all__ = ["workflow_matcher", "workflow_matches"]


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


def workflow_matcher(
    *,
    ids: Collection[str] = (),
    names: Collection[str] = (),
    tags: Iterable[tuple[str, str]] = (),
) -> Callable[[Workflow], bool]:
    """``workflow_matches`` for one set of criteria, compiled once: for judging a whole
    fleet against a rule (``aomd plan`` over 10,000 workflows calls it 120,000 times).
    The globs compile as ``fnmatch.fnmatchcase`` compiles them, so the answers agree."""
    wanted = frozenset(ids)
    globs = [re.compile(fnmatch.translate(g)).match for g in names]
    tag_globs = [(k, re.compile(fnmatch.translate(p)).match) for k, p in tags]

    def matches(workflow: Workflow) -> bool:
        if wanted and workflow.id not in wanted:
            return False
        if globs and not any(m(workflow.name) for m in globs):
            return False
        for key, match in tag_globs:
            value = workflow.tags.get(key)
            if value is None or match(value) is None:
                return False
        return True

    return matches

"""The fingerprint of a stopped node: what ``decide`` journals with every action.

It is the "before" of every lost-reply resolution (``daemon.engine.resolution``) and the
test for "the cloud has not moved since our write". One computation, used by the pure
core and the engine alike, so the two can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from daemon.kernel.model import Execution, NodeRun

__all__ = ["Fingerprint", "find_node", "fingerprint", "observed", "same_stop"]


def find_node(execution: Execution, node_id: str | None) -> NodeRun | None:
    """The latest run of ``node_id`` (a restarted node appears again later in the list)."""
    if node_id is None:
        return None
    for node in reversed(execution.nodes):
        if node.node_id == node_id:
            return node
    return None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The parts of an execution a write changes; journaled (as ``dumps()``) with every
    intent."""

    status: str
    current_node: str | None
    node_status: str | None
    node_begin: int | None
    node_end: int | None
    node_output: str

    def dumps(self) -> str:
        return json.dumps(
            [
                self.status,
                self.current_node,
                self.node_status,
                self.node_begin,
                self.node_end,
                self.node_output,
            ]
        )

    @classmethod
    def loads(cls, text: str) -> Fingerprint | None:
        try:
            s, cur, ns, nb, ne, out = json.loads(text)
        except (ValueError, TypeError):
            return None
        return cls(s, cur, ns, nb, ne, out)


def fingerprint(execution: Execution, node_id: str | None) -> Fingerprint:
    node = find_node(execution, node_id)
    return Fingerprint(
        execution.raw_status or execution.status.value,
        execution.nodes[-1].node_id if execution.nodes else None,
        (node.raw_status or node.status.value) if node else None,
        node.begin_time if node else None,
        node.end_time if node else None,
        json.dumps(dict(node.output), sort_keys=True, default=str) if node else "",
    )


def observed(execution: Execution, node_id: str | None) -> str:
    """The journaled form: ``fingerprint(execution, node_id).dumps()``."""
    return fingerprint(execution, node_id).dumps()


def same_stop(a: str, b: str) -> bool:
    """Two journaled fingerprints show the same stop of their node: equal except for the
    execution's current node, which in a workflow with parallel branches moves whenever
    another branch does."""
    fa, fb = Fingerprint.loads(a), Fingerprint.loads(b)
    if fa is None or fb is None:
        return False
    return fa == Fingerprint(fb.status, fa.current_node, *_node_part(fb))


def _node_part(f: Fingerprint) -> tuple[str | None, int | None, int | None, str]:
    return (f.node_status, f.node_begin, f.node_end, f.node_output)

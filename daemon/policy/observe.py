"""The node fingerprint ``decide`` journals with every action, without importing the engine.

The import contract in pyproject.toml forbids the pure core (``daemon.policy``) from
importing ``daemon.engine``, yet ``decide`` must produce exactly the string
``daemon.engine.resolve.fingerprint(execution, node_id).dumps()`` so the executor can
resolve a lost reply and so "state did not move since our write" can be detected.
This is the same computation; ``tests/unit/policy/test_observe.py`` checks with
hypothesis that both always agree.
"""

from __future__ import annotations

import json

from daemon.kernel.model import Execution, NodeRun

__all__ = ["find_node", "observed"]


def find_node(execution: Execution, node_id: str | None) -> NodeRun | None:
    """The latest run of ``node_id`` (a restarted node appears again later in the list)."""
    if node_id is None:
        return None
    for node in reversed(execution.nodes):
        if node.node_id == node_id:
            return node
    return None


def observed(execution: Execution, node_id: str | None) -> str:
    """``resolve.fingerprint(execution, node_id).dumps()``."""
    node = find_node(execution, node_id)
    current = execution.nodes[-1].node_id if execution.nodes else None
    return json.dumps(
        [
            execution.raw_status or execution.status.value,
            current,
            (node.raw_status or node.status.value) if node else None,
            node.begin_time if node else None,
            node.end_time if node else None,
            json.dumps(dict(node.output), sort_keys=True, default=str) if node else "",
        ]
    )

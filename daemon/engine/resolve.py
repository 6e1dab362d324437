"""Resolve a write whose outcome is unknown by comparing what we saw before and after.

This is the heart of "never blindly repeat": when the reply to a restart/skip/continue/
terminate is lost, we read the execution again and decide from state alone whether the
write took effect. ``None`` means "cannot tell yet, look again later" (never "resend").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from daemon.kernel.model import Execution, Status
from daemon.kernel.outcomes import Resolution
from daemon.policy.observe import observed


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The parts of an execution a write changes; journaled with every intent."""

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
    """Parsed form of ``daemon.policy.observe.observed`` (one computation, two views)."""
    fp = Fingerprint.loads(observed(execution, node_id))
    assert fp is not None  # observed() always emits the six-field list
    return fp


def resolve(kind: str, node_id: str | None, before: Fingerprint, after: Execution) -> Resolution:
    """Decide from state alone what became of a write whose reply was lost.

    ``applied``: state moved the way the write moves it. ``not_applied``: state is exactly
    as before, so the same attempt may be made again. ``moot``: the execution finished or
    was cancelled by someone else; nothing is left to do. ``unknown``: look again later.
    """
    now = fingerprint(after, node_id)
    if kind == "terminate":
        if after.status in (Status.CANCELING, Status.CANCEL):
            return "applied"
        if after.status.finished:
            return "moot"
        return "not_applied" if now == before else "unknown"
    if now == before:
        return "not_applied"
    if after.status.finished or after.status is Status.CANCELING:
        return "moot"
    return "applied"

"""Every lost or unreadable reply is resolved here, by reading the cloud again.

This is the heart of "never blindly repeat": when the reply to a write is lost, cut or
unreadable, the write may or may not have happened. One function per kind of write, side
by side, each pure (state read by the caller goes in, a ``Resolution`` comes out):

- ``resolve_operation``: restart / skip / continue / terminate, from the node's and the
  execution's state before (journaled with the intent) and after;
- ``resolve_trigger``: enable / disable, from the trigger state now;
- ``resolve_execute``: a scheduled run, from executions that appeared after we sent
  (the evidence journaled with the intent) — never from any execution near the fire time.

``unknown`` means "cannot tell yet, look again later" (never "resend"); ``not_applied``
lets the executor send the same key again; ``ambiguous`` is final and reported to a
person: aomd will neither claim the run happened nor risk a second one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from daemon.kernel.model import Execution, Status, Workflow
from daemon.kernel.outcomes import Resolution
from daemon.policy.observe import Fingerprint, fingerprint

CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
"""How far the cloud's clock (``begin_time``) may run behind ours. Applied on one side
only: an execution that began up to this long before we *sent* may still be ours."""
EXECUTE_SETTLE = timedelta(seconds=15)
"""How long after sending an execute whose reply was lost we keep looking before "no new
execution" counts as proof that it did not happen (the list may lag the write)."""


def resolve_operation(
    kind: str, node_id: str | None, before: Fingerprint, after: Execution
) -> Resolution:
    """What became of a node operation or terminate, from state alone.

    ``applied``: the node (or, for terminate, the execution) moved the way the write
    moves it, even if the execution finished since. ``not_applied``: exactly as before.
    ``moot``: someone else ended the execution and our node did not move. ``unknown``:
    something else changed; look again later.
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
    node_moved = (now.node_status, now.node_begin, now.node_end, now.node_output) != (
        before.node_status,
        before.node_begin,
        before.node_end,
        before.node_output,
    )
    if node_moved:
        return "applied"
    if after.status in (Status.CANCELING, Status.CANCEL):
        return "moot"
    if kind == "skip" and after.status is Status.SUCCESS:
        return "applied"  # a skip of the last node ends the run without touching the node
    if after.status.finished:
        return "moot"
    if now.current_node != before.current_node or after.status is not Status.PAUSING:
        return "applied"  # the execution moved on past the node we wrote to
    return "unknown"


def resolve_trigger(enable: bool, workflow: Workflow | None) -> Resolution:
    """An enable / disable, from the workflow's trigger state now."""
    if workflow is None:
        return "moot"  # the workflow is gone: nothing left to switch
    state = workflow.trigger_enabled
    if state is None:
        return "unknown"  # a trigger_status aomd cannot read proves nothing
    return "applied" if state is enable else "not_applied"


@dataclass(frozen=True, slots=True)
class ExecuteEvidence:
    """Journaled with a scheduled execute before it is sent: what "after we sent" means.

    ``known`` are the executions that already existed and began within the skew
    allowance before the send; any other execution that began after ``sent_at`` minus
    the allowance appeared after we sent, so it can be ours.
    """

    sent_at: datetime
    known: frozenset[str]

    def dumps(self) -> str:
        return json.dumps({"sent_at": self.sent_at.isoformat(), "known": sorted(self.known)})

    @classmethod
    def loads(cls, text: str) -> ExecuteEvidence | None:
        try:
            data = json.loads(text)
            sent_at = datetime.fromisoformat(data["sent_at"])
            known = frozenset(str(k) for k in data["known"])
        except (ValueError, TypeError, KeyError):
            return None
        return cls(sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC), known)

    @classmethod
    def before_send(cls, sent_at: datetime, executions: Iterable[Execution]) -> ExecuteEvidence:
        floor = _ms(sent_at - CLOCK_SKEW_ALLOWANCE)
        known = frozenset(
            e.execution_id for e in executions if e.begin_time is None or e.begin_time >= floor
        )
        return cls(sent_at, known)


ExecuteResolution = Resolution | str
"""``Resolution`` or ``"ambiguous"``."""


def resolve_execute(
    evidence: ExecuteEvidence, executions: Iterable[Execution], now: datetime
) -> ExecuteResolution:
    """A scheduled execute, from the executions that appeared after we sent.

    Exactly one new execution: ``applied``. None, once the list had time to settle:
    ``not_applied``. Several: ``ambiguous`` (a cron or a person started the workflow in
    the same moment; which one is ours cannot be told, and claiming success could hide a
    backup that never ran).
    """
    floor = _ms(evidence.sent_at - CLOCK_SKEW_ALLOWANCE)
    new = [
        e
        for e in executions
        if e.execution_id not in evidence.known
        and e.begin_time is not None
        and e.begin_time >= floor
    ]
    if len(new) == 1:
        return "applied"
    if len(new) > 1:
        return "ambiguous"
    return "not_applied" if now - evidence.sent_at >= EXECUTE_SETTLE else "unknown"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)

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

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from daemon.cloud.port import CloudClient
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.journal.store import HistoryRow, Journal
from daemon.kernel.actions import EXECUTION_WRITES
from daemon.kernel.clock import Clock
from daemon.kernel.errors import CloudError
from daemon.kernel.keys import SCHEDULE_KEY_PREFIXES
from daemon.kernel.model import Execution, Status, Workflow
from daemon.kernel.outcomes import Resolution
from daemon.kernel.shards import Shard, ShardOf, no_shard
from daemon.kernel.writes import WriteIntent
from daemon.policy.observe import Fingerprint, fingerprint

CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
"""How far the cloud's clock (``begin_time``) may run behind ours. Applied on one side
only: an execution that began up to this long before we *sent* may still be ours."""
EXECUTE_SETTLE = timedelta(seconds=15)
"""How long after sending an execute whose reply was lost we keep looking before "no new
execution" counts as proof that it did not happen (the list may lag the write)."""


def resolve_operation(
    kind: str,
    node_id: str | None,
    before: Fingerprint,
    after: Execution,
    children: frozenset[str] | None = None,
) -> Resolution:
    """What became of a node operation or terminate, from state alone.

    ``applied``: the node (or, for terminate, the execution) moved the way the write
    moves it, even if the execution finished since. ``not_applied``: exactly as before.
    ``moot``: someone else ended the execution and our node did not move. ``unknown``:
    something else changed; look again later.

    ``children`` (the node's children in the workflow graph, None when the workflow has
    no graph) makes the answer per node: another branch moving changes the execution's
    current node, which then proves nothing about ours; a child of ours starting does.
    """
    now = fingerprint(after, node_id)
    if children is not None:
        # the execution's current node says nothing about this branch
        now = Fingerprint(now.status, before.current_node, *_node_part(now))
    if kind == "terminate":
        if after.status in (Status.CANCELING, Status.CANCEL):
            return "applied"
        if after.status.finished:
            return "moot"
        return "not_applied" if now == before else "unknown"
    if now == before:
        if children is not None and children & {n.node_id for n in after.nodes}:
            # the node was passed without changing it: our skip, or someone else's
            return "applied" if kind == "skip" else "moot"
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
    if children is not None:
        if children & {n.node_id for n in after.nodes}:
            return "applied"  # the execution moved on past the node we wrote to
        return "unknown"  # another branch moved, ours did not: not proof either way
    if now.current_node != before.current_node or after.status is not Status.PAUSING:
        return "applied"  # the execution moved on past the node we wrote to
    return "unknown"


def _node_part(f: Fingerprint) -> tuple[str | None, int | None, int | None, str]:
    return (f.node_status, f.node_begin, f.node_end, f.node_output)


def graph_children(workflow: Workflow | None, node_id: str | None) -> frozenset[str] | None:
    """The node's children when the workflow has a graph, else None (see
    ``resolve_operation``)."""
    if workflow is None or node_id is None or not workflow.is_graph:
        return None
    return workflow.children_of(node_id)


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


def resolve_execute(
    evidence: ExecuteEvidence, executions: Iterable[Execution], now: datetime
) -> Resolution:
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


SWEEP_SECONDS = 30.0
"""How often open journal rows are looked at again (real seconds)."""
TRIGGER_KINDS = frozenset({"trigger_enable", "trigger_disable"})


class ReadBack:
    """Read-back closures for the live paths (handler, trigger reconciler, schedule
    runner): each reads the cloud once and answers with a ``Resolution``."""

    def __init__(self, *, client: CloudClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock

    def operation(
        self,
        wid: str,
        eid: str,
        kind: str,
        node_id: str | None,
        observed: str,
        workflow: Workflow | None = None,
    ) -> Callable[[], Awaitable[Resolution]]:
        """``workflow`` (its graph) when the caller has it; else it is read, so a branch
        of a parallel workflow is always judged on its own."""
        before = Fingerprint.loads(observed)

        async def read_back() -> Resolution:
            if kind == "notify":
                # A webhook we may or may not have queued before a kill: told again
                # rather than never (a notification is not a cloud write).
                return "not_applied"
            if before is None:
                return "unknown"
            wf = workflow
            if wf is None:
                wf = next((w for w in await self.client.list_workflows() if w.id == wid), None)
            after = await self.client.get_execution(wid, eid)
            return resolve_operation(kind, node_id, before, after, graph_children(wf, node_id))

        return read_back

    def trigger(self, wid: str, enable: bool) -> Callable[[], Awaitable[Resolution]]:
        async def read_back() -> Resolution:
            found = [w for w in await self.client.list_workflows() if w.id == wid]
            return resolve_trigger(enable, found[0] if found else None)

        return read_back

    def execute(
        self, wid: str, evidence: ExecuteEvidence | None
    ) -> Callable[[], Awaitable[Resolution]]:
        async def read_back() -> Resolution:
            if evidence is None:
                return "unknown"
            return resolve_execute(
                evidence, await self.client.list_executions(wid), self.clock.now()
            )

        return read_back


class Sweeper:
    """Finds every journaled write still ``pending``/``unknown`` after a crash or a lost
    reply, whatever path made it, and resolves it by reading, so no row is left open
    once the cloud can tell. Runs at start-up and every ``SWEEP_SECONDS``."""

    def __init__(
        self,
        *,
        read_back: ReadBack,
        journal: Journal,
        executor: Executor,
        notifier: Notifier | None = None,
        account: str = "",
        sole_account: bool = True,
        shard_of: ShardOf = no_shard,
        schedule_shard: Shard | None = None,
    ) -> None:
        """``shard_of``/``schedule_shard``: a row is resolved only by the replica holding
        its shard (the schedule's for a schedule's rows, else the workflow's)."""
        self.shard_of = shard_of
        self.schedule_shard = schedule_shard
        self._wake = asyncio.Event()
        self.read_back = read_back
        self.journal = journal
        self.executor = executor
        self.notifier = notifier
        self.account = account
        self.sole_account = sole_account
        """Execution rows carry no account: with several accounts only the live path
        (the handler, which knows the account) resolves them, not the sweep."""

    def nudge(self) -> None:
        """Sweep now: this replica just became the leader (or gained a shard), and the
        rows a killed leader left open are its to close, not in up to 30 s."""
        self._wake.set()

    async def run(self) -> None:
        """Sweep at start-up, then every ``SWEEP_SECONDS`` or when nudged; a failed read is
        logged by the client and retried next time (the rows stay open meanwhile)."""
        while True:
            self._wake.clear()
            # a failed read is logged as api_call_failed with its request id; next sweep
            with contextlib.suppress(CloudError):
                await self.sweep()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWEEP_SECONDS):
                    await self._wake.wait()

    async def sweep(self) -> int:
        """Resolve every open row the cloud can answer for; returns how many closed."""
        closed = 0
        for row in await self.journal.unresolved():
            closed += await self._close(row)
        return closed

    async def _close(self, row: HistoryRow) -> int:
        intent = WriteIntent(
            key=row.key,
            kind=row.kind,
            workflow_id=row.workflow_id,
            execution_id=row.execution_id,
            node_id=row.node_id,
            attempt=row.attempt,
            rule=row.rule,
            reason=row.reason,
            dry_run=row.dry_run,
            observed=row.observed,
        )
        shard = (
            self.schedule_shard
            if row.key.startswith(SCHEDULE_KEY_PREFIXES)
            else self.shard_of(row.workflow_id)
        )
        read_back: Callable[[], Awaitable[Resolution]]
        if (
            row.kind in ("trigger_enable", "trigger_disable", "execute")
            or row.kind.startswith(("dataarts_", "scheduled_"))
        ) and f"/{self.account}/" not in row.key:
            return 0  # another account's row
        if row.kind in EXECUTION_WRITES or row.kind == "notify":
            if row.execution_id is None or not self.sole_account:
                return 0
            read_back = self.read_back.operation(
                row.workflow_id, row.execution_id, row.kind, row.node_id, row.observed
            )
        elif row.kind in TRIGGER_KINDS:
            read_back = self.read_back.trigger(row.workflow_id, row.kind == "trigger_enable")
        elif row.kind == "execute" and (evidence := ExecuteEvidence.loads(row.observed)):
            read_back = self.read_back.execute(row.workflow_id, evidence)
        elif row.kind.startswith("scheduled_"):
            # A decision journaled by an older aomd in two steps and cut between them.
            done = await self.executor.finish_open(
                intent, row.kind.removeprefix("scheduled_"), shard=shard
            )
            return int(done)
        elif row.kind.startswith("dataarts_") or row.kind == "execute":
            # DataArts has no read-back; an execute journaled by an older aomd has no
            # evidence to judge by: reported once as unknown, never guessed
            if row.outcome == "unknown":
                return 0  # already reported
            if not await self.executor.finish_open(intent, "unknown", shard=shard):
                return 0
            if self.notifier is not None:
                self.notifier.notify("outcome_unknown", _payload(row))
            return 0
        else:
            return 0
        report = await self.executor.resolve_open(intent, read_back, shard=shard)
        if row.kind in TRIGGER_KINDS and report.outcome in ("resolved_applied", "moot"):
            # as the reconciler does after a write it saw land: a trigger aomd disabled is
            # its own (re-enabled after the window), one it enabled is no longer
            disabled = row.kind == "trigger_disable" and report.outcome == "resolved_applied"
            await self.journal.set_trigger_owned(
                row.workflow_id,
                disabled,
                reason=row.reason,
                at=self.executor.clock.now(),
                account=self.account,
            )
        elif (
            row.kind == "trigger_disable"
            and report.outcome == "resolved_not_applied"
            and "/drift" not in row.key  # a drift correction's claim predates it
        ):
            await self.journal.set_trigger_owned(
                row.workflow_id,
                False,
                reason=row.reason,
                at=self.executor.clock.now(),
                account=self.account,
            )
        if report.outcome == "ambiguous" and self.notifier is not None:
            self.notifier.notify("outcome_ambiguous", _payload(row))
        return int(report.outcome not in ("unknown", "refused", "duplicate"))


def _payload(row: HistoryRow) -> dict[str, object]:
    return {
        "workflow_id": row.workflow_id,
        "key": row.key,
        "kind": row.kind,
        "rule": row.rule,
        "reason": row.reason,
    }

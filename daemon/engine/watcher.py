"""Watching: discover in-scope workflows, poll their executions, hand paused ones on.

Cost grows with the number of workflows, not executions: one ListWorkflowExecutions per
workflow per interval (fast while it has an active execution, slow while idle), the
detail call only when a brief lacks its node list, and ListWorkflow every
``discovery_interval`` or on reload. Errors on one workflow never stop the others.

An idle workflow is polled only every ``slow_interval`` (60 s), so a new execution of it
would wait up to that long to be seen: far more than the reaction goal (fast interval +
1 s). ListWorkflow carries each workflow's ``last_execution_id``, and one page covers 100
workflows, so a *change scan* (ListWorkflow every ``scan_interval``, default the fast
interval) finds every workflow whose newest execution changed and polls it at once. For
2,000 workflows that is 20 calls per 5 s (240/min) next to the 2,000/min of slow polls.
A backend that leaves ``last_execution_id`` empty just loses the shortcut, not the slow
poll.

Two lanes keep reaction time flat under load: workflows with an active or new execution
are served from a *hot* queue before any idle poll, and polls are taken in bounded
batches, so neither a start-up sweep over every workflow nor the idle backlog delays
them. Idle polls run on a stable per-workflow phase of the slow interval, so the request
rate stays flat instead of repeating the start-up burst every minute. Figures:
bench/reaction.py.
"""

from __future__ import annotations

import asyncio
import heapq
import zlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from daemon.cloud.port import CloudClient
from daemon.kernel.clock import Clock
from daemon.kernel.errors import CloudError, JournalError
from daemon.kernel.model import Execution, Status, Workflow

log = structlog.get_logger("aomd.watcher")

RECENT_END = timedelta(hours=24)
"""How long after an execution ended ``fail``/``approvalFailed`` it is still handed on."""
ENDED_STOPPED = frozenset({Status.FAIL, Status.APPROVAL_FAILED})

#: Called for each active execution; returns when to look again (emulated/wall time) or None.
Handler = Callable[[Workflow, Execution], Awaitable[datetime | None]]
#: Decides which discovered workflows are in scope of the current policy.
Scope = Callable[[Workflow], bool]
#: Told after each poll which executions of a workflow are still active (None when the
#: workflow left this watcher's scope), so per-execution state elsewhere can be dropped.
Retire = Callable[[str, Collection[str] | None], Awaitable[None] | None]


@dataclass
class WatchStats:
    polls: int = 0
    poll_errors: int = 0
    discoveries: int = 0
    executions_seen: int = 0
    active_workflows: int = 0
    calls: int = 0
    last_cycle_seconds: float = 0.0
    watched: int = 0
    journal_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Watcher:
    """Polls one account. Level-triggered: every poll judges the full current state."""

    def __init__(
        self,
        *,
        client: CloudClient,
        clock: Clock,
        handler: Handler,
        scope: Callable[[], Scope],
        fast_interval: float,
        slow_interval: float,
        discovery_interval: float,
        concurrency: int,
        speed: float = 1.0,
        on_cycle: Callable[[WatchStats], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        retire: Retire | None = None,
        scan_interval: float | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.handler = handler
        self.scope = scope
        self.fast = fast_interval
        self.slow = slow_interval
        self.discovery_interval = discovery_interval
        self.scan_interval = fast_interval if scan_interval is None else scan_interval
        """0 or less disables the change scan (only discovery and the slow poll)."""
        self.speed = speed
        self.on_cycle = on_cycle
        self.on_tick = on_tick
        """Called once per pass of ``run`` (at least every second): the liveness beat."""
        self.retire = retire
        self._journal_error_logged = -float("inf")
        self.stats = WatchStats()
        self.workflows: dict[str, Workflow] = {}
        self._sem = asyncio.Semaphore(concurrency)
        self._batch = max(4 * concurrency, 32)
        self._queue: list[tuple[float, str]] = []
        """Idle workflows (and the start-up sweep), by due time."""
        self._hot: list[tuple[float, str]] = []
        """Workflows with an active or new execution: served before ``_queue`` so their
        polls never wait behind a backlog of idle ones (a start-up sweep)."""
        self._hot_ids: set[str] = set()
        self._due_at: dict[str, float] = {}
        """The one live heap entry per workflow; other entries for it are stale."""
        self._next_discovery = 0.0
        self._next_scan = 0.0
        self._listed: dict[str, frozenset[str]] = {}
        """workflow -> execution ids of its last listing, so ``executions_seen`` counts
        each execution once (its first sighting), not on every poll; bounded by the
        watched workflows times one listing."""
        self._rediscover = asyncio.Event()
        self.discovered = asyncio.Event()
        """Set after the first successful discovery (readiness)."""

    def request_discovery(self) -> None:
        """Called on policy reload: the scope may have changed."""
        self._rediscover.set()

    async def discover(self) -> Sequence[Workflow]:
        everything, _ = await self._list(scan=False)
        self.stats.discoveries += 1
        self._next_discovery = asyncio.get_running_loop().time() + self.discovery_interval
        self.discovered.set()
        return everything

    async def scan(self) -> int:
        """The change scan: list workflows, poll now each one with a new newest execution.

        Returns how many workflows had one. Also picks up added and removed workflows, so
        it does a discovery's work, only logged quietly when nothing was added or removed.
        """
        _, changed = await self._list(scan=True)
        self.stats.extra["scans"] = self.stats.extra.get("scans", 0) + 1
        self.stats.extra["scan_changed"] = self.stats.extra.get("scan_changed", 0) + changed
        return changed

    async def _list(self, *, scan: bool) -> tuple[list[Workflow], int]:
        loop = asyncio.get_running_loop()
        everything = await self.client.list_workflows()
        self.stats.calls += 1
        in_scope = self.scope()
        old = self.workflows
        fresh = {wf.id: wf for wf in everything if in_scope(wf)}
        added = fresh.keys() - old.keys()
        removed = old.keys() - fresh.keys()
        self.workflows = fresh
        now = loop.time()
        changed = 0
        for wid, wf in fresh.items():
            if wid in added:
                self._schedule(wid, now)
                continue
            last = wf.last_execution_id
            if last is not None and last != old[wid].last_execution_id:
                changed += 1
                # In the hot lane, ahead of everything idle already due (a start-up
                # sweep, say): a new execution is what the reaction time is measured on.
                self._schedule(wid, now, hot=True)
        for wid in removed:
            # Their heap entries go stale and are dropped when popped; the map must not
            # keep every workflow that was ever in scope.
            self._due_at.pop(wid, None)
            self._listed.pop(wid, None)
            self._hot_ids.discard(wid)
            if self.retire is not None:
                done = self.retire(wid, None)
                if done is not None:
                    await done
        self.stats.watched = len(fresh)
        self._next_scan = now + (
            self.scan_interval if self.scan_interval > 0 else self.discovery_interval
        )
        if not scan or added or removed:
            log.info(
                "workflows_discovered",
                total=len(everything),
                watched=len(fresh),
                added=len(added),
                removed=len(removed),
                new_executions=changed,
            )
        return everything, changed

    async def poll_all(self) -> None:
        """Poll every watched workflow once now (``aomd run --once``)."""
        await asyncio.gather(*(self._poll(wid) for wid in list(self.workflows)))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.on_tick is not None:
                self.on_tick()
            cycle_start = loop.time()
            if self._rediscover.is_set() or cycle_start >= self._next_discovery:
                self._rediscover.clear()
                try:
                    await self.discover()
                except CloudError as exc:
                    self._list_failed("discovery_failed", exc)
                    self._next_discovery = loop.time() + min(self.fast * 2, 30.0)
            elif cycle_start >= self._next_scan:
                try:
                    await self.scan()
                except CloudError as exc:
                    # Only a shortcut: the slow poll still finds new executions.
                    self._list_failed("scan_failed", exc)
                    self._next_scan = loop.time() + max(self.scan_interval, self.fast)
            due: list[str] = []
            now = loop.time()
            # A bounded batch: after a start-up sweep thousands of polls are due at once,
            # and one gather over all of them would hold off the change scan (and so
            # every new execution) until the sweep ends (~20 s for 2,000 workflows at
            # 100 requests/s).
            for heap, hot in ((self._hot, True), (self._queue, False)):
                while heap and heap[0][0] <= now and len(due) < self._batch:
                    at, wid = heapq.heappop(heap)
                    if (
                        wid in self.workflows
                        and self._due_at.get(wid) == at
                        and (wid in self._hot_ids) == hot
                        and wid not in due
                    ):
                        due.append(wid)
            if due:
                await asyncio.gather(*(self._poll(wid) for wid in due))
                self.stats.last_cycle_seconds = loop.time() - cycle_start
                if self.on_cycle is not None:
                    self.on_cycle(self.stats)
            wake = min(self._next_discovery, self._next_scan)
            for heap in (self._hot, self._queue):
                if heap:
                    wake = min(wake, heap[0][0])
            timeout = max(0.0, min(wake - loop.time(), 1.0))
            try:
                async with asyncio.timeout(timeout):
                    await self._rediscover.wait()
            except TimeoutError:
                pass

    def _count_new(self, wid: str, executions: Sequence[Execution]) -> None:
        """First sightings only: an execution is new when the workflow's previous listing
        did not have it (a listing keeps the newest few, so an id that dropped out of it
        never comes back)."""
        ids = frozenset(e.execution_id for e in executions)
        self.stats.executions_seen += len(ids - self._listed.get(wid, frozenset()))
        self._listed[wid] = ids

    def _list_failed(self, event: str, exc: CloudError) -> None:
        log.warning(
            event, error=type(exc).__name__, error_code=exc.error_code, request_id=exc.request_id
        )

    async def _poll(self, wid: str) -> None:
        loop = asyncio.get_running_loop()
        wf = self.workflows.get(wid)
        if wf is None:
            return
        interval = self.slow
        hot = True
        try:
            async with self._sem:
                executions = await self.client.list_executions(wid)
                self.stats.calls += 1
            self.stats.polls += 1
            active = [e for e in executions if not e.status.finished]
            self._count_new(wid, executions)
            recheck: datetime | None = None
            for execution in (*active, *self._recently_stopped(executions)):
                # One execution's error must not stop the others of the same workflow.
                when = await self._handle(wf, execution)
                if when is not None and (recheck is None or when < recheck):
                    recheck = when
            if self.retire is not None:
                done = self.retire(wid, {e.execution_id for e in active})
                if done is not None:
                    await done
            interval = self.fast if active else self._idle_wait(wid, loop.time())
            hot = bool(active)
            if recheck is not None:
                # recheck is on the (possibly emulated) clock; loop time is real seconds.
                wait = (recheck - self.clock.now()).total_seconds() / self.speed
                interval = max(0.05, min(interval, wait))
        except CloudError as exc:
            self._failed(wid, None, exc)
            interval = self.fast
        except Exception:
            # A bug while polling one workflow must not stop the others.
            self.stats.poll_errors += 1
            log.exception("poll_crashed", workflow_id=wid)
            interval = self.fast
        self._schedule(wid, loop.time() + interval, hot=hot)

    def _recently_stopped(self, executions: Sequence[Execution]) -> list[Execution]:
        """Executions that ended ``fail`` or ``approvalFailed`` within ``RECENT_END``: the
        handler says once why aomd cannot act on them (or, for ``fail``, tries a rule's
        action once). Older ones are history, not news."""
        floor = int((self.clock.now() - RECENT_END).timestamp() * 1000)
        return [
            e
            for e in executions
            if e.status in ENDED_STOPPED
            and (e.end_time or e.last_update_time or e.begin_time or 0) >= floor
        ]

    async def _handle(self, wf: Workflow, execution: Execution) -> datetime | None:
        """Hand one active execution on; on error log it and look again soon."""
        try:
            if not execution.nodes:
                async with self._sem:
                    execution = await self.client.get_execution(wf.id, execution.execution_id)
                    self.stats.calls += 1
            return await self.handler(wf, execution)
        except CloudError as exc:
            self._failed(wf.id, execution.execution_id, exc)
        except JournalError as exc:
            # The journal is unusable (disk full, locked, removed): nothing is written
            # without it. Say so once a minute, not with a traceback per execution.
            self.stats.poll_errors += 1
            self.stats.journal_errors += 1
            now = asyncio.get_running_loop().time()
            if now - self._journal_error_logged >= 60.0:
                self._journal_error_logged = now
                log.error("journal_unavailable", error=str(exc), workflow_id=wf.id)
        except Exception:
            # A bug while handling one execution must not stop the others; it is logged
            # with its traceback and the execution is looked at again soon.
            self.stats.poll_errors += 1
            log.exception("poll_crashed", workflow_id=wf.id, execution_id=execution.execution_id)
        return self.clock.now() + timedelta(seconds=self.fast * self.speed)

    def _failed(self, wid: str, execution_id: str | None, exc: CloudError) -> None:
        self.stats.poll_errors += 1
        log.warning(
            "poll_failed",
            workflow_id=wid,
            execution_id=execution_id,
            error=type(exc).__name__,
            status=exc.status,
            error_code=exc.error_code,
            request_id=exc.request_id,
        )

    def _idle_wait(self, wid: str, now: float) -> float:
        """Seconds to an idle workflow's next poll: on its own phase of the slow interval.

        Without a phase every workflow found at start-up is due again at the same instant,
        every slow interval: thousands of polls queue behind the rate limit, and the fast
        polls of active executions wait behind them (reaction latency of tens of seconds
        in bench/reaction.py). A stable per-workflow phase (CRC-32 of its id) spreads the
        idle polls evenly, so the request rate is flat at ``watched / slow_interval``.
        """
        phase = (zlib.crc32(wid.encode()) / 2**32) * self.slow
        wait = (phase - now) % self.slow
        if wait < self.slow / 4:  # just polled near its phase (e.g. woken by a scan)
            wait += self.slow
        return wait

    def _schedule(self, wid: str, at: float, *, hot: bool = False) -> None:
        self._due_at[wid] = at
        if hot:
            self._hot_ids.add(wid)
            heapq.heappush(self._hot, (at, wid))
        else:
            self._hot_ids.discard(wid)
            heapq.heappush(self._queue, (at, wid))

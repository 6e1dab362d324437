"""Watching: discover in-scope workflows, see new and stopped executions, hand them on.

Where the calls go (figures: bench/reaction.py, bench/fleet.py). ListWorkflow carries
each workflow's ``last_execution_id`` and ``status`` (the newest execution's status,
**assumed**: it may be missing or stale), and one page covers 100 workflows, so a *change
scan* (ListWorkflow every ``scan_interval``, default the fast interval) is the cheapest
way to see most things happen:

* a new newest execution or a changed status (a node failed or paused, a human retried a
  ``fail`` run) puts the workflow on the *hot* lane and polls it at once;
* a workflow with an execution its last poll found active stays on the hot lane (polled
  every fast interval, before anything idle) until its own poll finds nothing active: a
  stopped branch of a run whose newest id and status did not change is still seen.
  The one exception (``scan_covers``): a lone active execution that is the newest and
  plainly ``executing`` per poll and listing; its stop changes the listed status, so
  the scan sees it, and it is polled every slow interval only as a guard;
* an idle workflow the listing *vouches* for (its newest execution is one the last poll
  listed, finished, and nothing known active) gets only a safety poll every
  ``idle_interval`` (an hour by default), instead of the 60 s slow poll that cost 2,000
  calls a minute for 2,000 workflows;
* an idle workflow whose listing lacks those fields (or contradicts the poll) falls back
  to the slow poll, as before the scan existed.

Every period comes from a plan (``watch_budget``) sized to ``requests_per_second`` x
``BUDGET_SHARE``: when the fleet needs more, all periods stretch by one factor (latency
grows smoothly), the effective periods and the budget go to ``/metrics``, and
``watch_budget_exceeded`` names the setting to raise. The idle lane (the start-up sweep
over every workflow, slow and safety polls) is paced to what the scan and the hot lane
leave, so it never queues ahead of them in the token bucket; polls are taken in bounded
batches and idle polls run on a stable per-workflow phase, so the request rate is flat.
Errors on one workflow never stop the others.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import zlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from daemon.cloud.client import PAGE_SIZE
from daemon.cloud.port import CloudClient
from daemon.engine.watch_budget import BUDGET_SHARE, Demand, Plan, plan
from daemon.kernel.clock import Clock
from daemon.kernel.errors import CloudError, JournalError
from daemon.kernel.model import Execution, Status, Workflow

log = structlog.get_logger("aomd.watcher")

RECENT_END = timedelta(hours=24)
"""How long after an execution ended ``fail``/``approvalFailed`` it is still handed on."""
ENDED_STOPPED = frozenset({Status.FAIL, Status.APPROVAL_FAILED})
BUDGET_LOG_SECONDS = 600.0
"""``watch_budget_exceeded`` is logged at most this often per account."""


def listing_vouches(wf: Workflow, executions: Sequence[Execution], ids_listed: bool) -> bool:
    """Whether the listing can stand in for slow polls of an idle workflow.

    Yes when it names the newest execution, that execution is one the poll just listed
    (so the listing is not older than what we know), and its status has finished. A
    never-run workflow (no id, ``waitExecute``, nothing listed) qualifies only when other
    workflows of the same listing carry ids: then a missing id means "none", not "this
    backend does not send the field". Anything missing or contradictory: no.
    """
    status = Status.parse(wf.status) if wf.status else None
    if status is None:
        return False
    last = wf.last_execution_id
    if last is None:
        return ids_listed and status is Status.WAIT_EXECUTE and not executions
    return status.finished and any(e.execution_id == last for e in executions)


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


_WAITING = frozenset({Status.PAUSING, Status.WAIT_APPROVAL})


def _waiting(wf: Workflow) -> bool:
    """The listing says the newest execution waits (for a person, or for aomd)."""
    return bool(wf.status) and Status.parse(wf.status) in _WAITING


def _ended_well(wf: Workflow) -> bool:
    status = Status.parse(wf.status)
    return status.finished and status not in ENDED_STOPPED


def scan_covers(wf: Workflow, active: Sequence[Execution]) -> bool:
    """Whether the change scan alone can see this workflow's next stop.

    Yes when its one active execution is the newest (the one the listing describes) and
    both the poll and the listing say it is plainly ``executing``: a node that fails or
    pauses turns it ``pausing`` (**assumed**, API.md), a status change the scan sees and
    answers with a poll at once. Such a workflow is polled only every slow interval, as
    a guard against a listing that does not say so; any other active execution (an older
    one, one that waits) stays on the fast lane.
    """
    return (
        len(active) == 1
        and active[0].execution_id == wf.last_execution_id
        and active[0].status is Status.EXECUTING
        and Status.parse(wf.status) is Status.EXECUTING
    )


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
        idle_interval: float = 3600.0,
        requests_per_second: float | None = None,
        budget_share: float = BUDGET_SHARE,
        account: str = "default",
        monotonic: Callable[[], float] | None = None,
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
        self.idle = idle_interval
        """Safety-poll period of idle workflows the listing vouches for; 0 or less: never."""
        self.requests_per_second = requests_per_second
        """The account's rate limit the periods are planned from (None: no plan)."""
        self.budget_share = budget_share
        self.account = account
        self._monotonic = monotonic
        """Time for scheduling (default the event loop's): tests step an emulated fleet
        through minutes with ``step`` and a settable clock."""
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
        self._fast: set[str] = set()
        """Workflows on the fast lane after their last poll (an active execution the scan
        does not cover); what the plan counts as hot. A workflow put on the hot lane once
        by a scan (a new execution, a new status) is a one-off poll, not a period."""
        self._vouched: set[str] = set()
        """Idle workflows whose listing vouches that nothing runs (``listing_vouches``)."""
        self._unpolled: set[str] = set()
        """Workflows not polled since they were discovered (the start-up sweep)."""
        self._swept = False
        self._ids_listed = False
        """Whether the last listing carried any ``last_execution_id`` at all."""
        self._pages = 1
        self.plan: Plan = self._plan()
        """The periods in force (``watch_budget.plan``), refreshed every pass."""
        self._credit = 0.0
        """Idle-lane polls that may go now: refills at ``plan.spare`` per second."""
        self._credit_at: float | None = None
        self._over_budget_logged = -math.inf
        self._over_budget = False
        self._t0: float | None = None
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
        self._next_discovery = self._now() + self.discovery_interval
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
        started = self._now()
        everything = await self.client.list_workflows()
        self._pages = max(1, -(-len(everything) // PAGE_SIZE))
        self.stats.calls += self._pages
        in_scope = self.scope()
        old = self.workflows
        fresh = {wf.id: wf for wf in everything if in_scope(wf)}
        added = fresh.keys() - old.keys()
        removed = old.keys() - fresh.keys()
        self.workflows = fresh
        self._ids_listed = any(wf.last_execution_id for wf in everything)
        now = self._now()
        if self._t0 is None:
            self._t0 = now
        changed = 0
        for wid, wf in fresh.items():
            if wid in added:
                # Polled once (the sweep: an older execution may be waiting for a person);
                # at once on the hot lane if the listing says its newest one runs.
                self._unpolled.add(wid)
                self._schedule(wid, now, hot=_waiting(wf))
                continue
            was = old[wid]
            last = wf.last_execution_id
            new_run = last is not None and last != was.last_execution_id
            if new_run or (wf.status and wf.status != was.status):
                changed += 1
                # In the hot lane, ahead of everything idle already due (a start-up
                # sweep, say): a new execution or a new stop is what reaction time is
                # measured on. A run that just ended well (success, cancel) is looked at
                # too, but from the paced idle lane: hundreds of them ending at once
                # must not crowd the token bucket ahead of a stop.
                self._vouched.discard(wid)
                hot = new_run or not _ended_well(wf) or wid in self._fast
                self._schedule(wid, now, hot=hot)
        for wid in removed:
            # Their heap entries go stale and are dropped when popped; the map must not
            # keep every workflow that was ever in scope.
            self._due_at.pop(wid, None)
            self._listed.pop(wid, None)
            self._hot_ids.discard(wid)
            self._fast.discard(wid)
            self._vouched.discard(wid)
            self._unpolled.discard(wid)
            if self.retire is not None:
                done = self.retire(wid, None)
                if done is not None:
                    await done
        self.stats.watched = len(fresh)
        self.plan = self._plan()
        # From the start of this walk: the period is the scan's, not the scan's plus the
        # walk through every page (up to 2 s for 20 pages at 10 requests/s).
        self._next_scan = started + (
            self.plan.scan if self.scan_interval > 0 else self.discovery_interval
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
        """Poll every watched workflow once now (``aomd run --once``; no pacing)."""
        await asyncio.gather(*(self._poll(wid) for wid in list(self.workflows)))

    async def run(self) -> None:
        while True:
            wake = await self.step()
            timeout = max(0.0, min(wake - self._now(), 1.0))
            try:
                async with asyncio.timeout(timeout):
                    await self._rediscover.wait()
            except TimeoutError:
                pass

    async def step(self) -> float:
        """One pass: discovery or scan when due, then one bounded batch of due polls
        (hot lane first, the idle lane only as far as its paced credit allows).

        Returns when the next pass is due (on ``_now``'s clock).
        """
        if self.on_tick is not None:
            self.on_tick()
        cycle_start = self._now()
        if self._rediscover.is_set() or cycle_start >= self._next_discovery:
            self._rediscover.clear()
            try:
                await self.discover()
            except CloudError as exc:
                self._list_failed("discovery_failed", exc)
                self._next_discovery = self._now() + min(self.fast * 2, 30.0)
        elif cycle_start >= self._next_scan:
            try:
                await self.scan()
            except CloudError as exc:
                # Only a shortcut: the slow poll still finds new executions.
                self._list_failed("scan_failed", exc)
                self._next_scan = self._now() + max(self.scan_interval, self.fast)
        now = self._now()
        self.plan = self._plan()
        self._budget_check(now)
        self._refill(now)
        due: list[str] = []
        # A bounded batch: after a start-up sweep thousands of polls are due at once,
        # and one gather over all of them would hold off the change scan (and so
        # every new execution) until the sweep ends.
        for heap, hot in ((self._hot, True), (self._queue, False)):
            while heap and heap[0][0] <= now and len(due) < self._batch:
                if not hot and self._credit < 1.0:
                    break
                at, wid = heapq.heappop(heap)
                if (
                    wid in self.workflows
                    and self._due_at.get(wid) == at
                    and (wid in self._hot_ids) == hot
                    and wid not in due
                ):
                    due.append(wid)
                    if not hot:
                        self._credit -= 1.0
        if due:
            await asyncio.gather(*(self._poll(wid) for wid in due))
            self.stats.last_cycle_seconds = self._now() - cycle_start
            if self.on_cycle is not None:
                self.on_cycle(self.stats)
        self._sweep_check()
        wake = min(self._next_discovery, self._next_scan)
        if self._hot:
            wake = min(wake, self._hot[0][0])
        if self._queue:
            idle_at = self._queue[0][0]
            if self._credit < 1.0 and self.plan.spare > 0:
                idle_at = max(idle_at, now + (1.0 - self._credit) / self.plan.spare)
            wake = min(wake, idle_at)
        return wake

    def _now(self) -> float:
        if self._monotonic is not None:
            return self._monotonic()
        return asyncio.get_running_loop().time()

    def _plan(self) -> Plan:
        hot = len(self._fast)
        vouched = len(self._vouched)
        scan = self.scan_interval if self.scan_interval > 0 else self.discovery_interval
        return plan(
            Demand(
                pages=self._pages,
                hot=hot,
                unsure=max(0, len(self.workflows) - hot - vouched - len(self._unpolled)),
                vouched=vouched,
                sweep=len(self._unpolled),
            ),
            fast=self.fast,
            slow=self.slow,
            idle=self.idle,
            requests_per_second=self.requests_per_second,
            share=self.budget_share,
            scan=scan,
        )

    def _refill(self, now: float) -> None:
        spare = self.plan.spare
        if math.isinf(spare):
            self._credit = math.inf
            return
        if self._credit_at is None or math.isinf(self._credit):
            self._credit = 1.0
        else:
            cap = max(1.0, min(float(self._batch), spare))
            self._credit = min(cap, self._credit + (now - self._credit_at) * spare)
        self._credit_at = now

    def _budget_check(self, now: float) -> None:
        """Say (at most every ``BUDGET_LOG_SECONDS``) that the fleet does not fit, and
        which setting would make it fit; say once when it fits again."""
        p = self.plan
        if p.fits:
            if self._over_budget:
                self._over_budget = False
                log.info("watch_budget_fits", account=self.account, scan_period=p.scan)
            return
        self._over_budget = True
        if now - self._over_budget_logged < BUDGET_LOG_SECONDS:
            return
        self._over_budget_logged = now
        log.warning(
            "watch_budget_exceeded",
            account=self.account,
            setting=f"accounts.{self.account}.requests_per_second",
            requests_per_second=self.requests_per_second,
            needed_requests_per_second=p.needed_requests_per_second(self.budget_share),
            planned_calls_per_minute=round(p.demand * 60),
            budget_calls_per_minute=round(p.budget * 60),
            stretch=round(p.stretch, 2),
            scan_period=round(p.scan, 1),
            fast_period=round(p.fast, 1),
            watched=len(self.workflows),
            hint="or raise watch.fast_interval / watch.slow_interval / watch.idle_interval",
        )

    def _sweep_check(self) -> None:
        if self._swept or self._t0 is None or self._unpolled:
            return
        self._swept = True
        log.info(
            "watch_sweep_done",
            account=self.account,
            watched=len(self.workflows),
            seconds=round(self._now() - self._t0, 1),
        )

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
        wf = self.workflows.get(wid)
        if wf is None:
            return
        interval: float | None = self.plan.fast
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
            self._unpolled.discard(wid)
            now = self._now()
            listed = self.workflows.get(wid, wf)
            scanning = self.scan_interval > 0
            vouched = (
                not active and scanning and listing_vouches(listed, executions, self._ids_listed)
            )
            if vouched:
                self._vouched.add(wid)
            else:
                self._vouched.discard(wid)
            covered = bool(active) and scanning and scan_covers(listed, active)
            if active and not covered:
                self._fast.add(wid)
                interval = self.plan.fast
            elif vouched:
                interval = self._idle_wait(wid, now, self.plan.idle) if self.idle > 0 else None
            else:
                interval = self._idle_wait(wid, now, self.plan.slow)
            if not active or covered:
                self._fast.discard(wid)
            hot = (bool(active) and not covered) or recheck is not None
            if recheck is not None:
                # recheck is on the (possibly emulated) clock; loop time is real seconds.
                wait = (recheck - self.clock.now()).total_seconds() / self.speed
                interval = max(0.05, wait if interval is None else min(interval, wait))
        except CloudError as exc:
            self._failed(wid, None, exc)
            interval = self.plan.fast
        except Exception:
            # A bug while polling one workflow must not stop the others.
            self.stats.poll_errors += 1
            log.exception("poll_crashed", workflow_id=wid)
            interval = self.plan.fast
        if interval is None:
            # Vouched for and no safety poll: only the scan brings it back (a new
            # execution or status puts it on the hot lane).
            self._due_at.pop(wid, None)
            self._hot_ids.discard(wid)
            return
        self._schedule(wid, self._now() + interval, hot=hot)

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
            now = self._now()
            if now - self._journal_error_logged >= 60.0:
                self._journal_error_logged = now
                log.error("journal_unavailable", error=str(exc), workflow_id=wf.id)
        except Exception:
            # A bug while handling one execution must not stop the others; it is logged
            # with its traceback and the execution is looked at again soon.
            self.stats.poll_errors += 1
            log.exception("poll_crashed", workflow_id=wf.id, execution_id=execution.execution_id)
        return self.clock.now() + timedelta(seconds=self.plan.fast * self.speed)

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

    def _idle_wait(self, wid: str, now: float, period: float) -> float:
        """Seconds to an idle workflow's next poll: on its own phase of ``period``.

        Without a phase every workflow found at start-up is due again at the same instant,
        every period: thousands of polls queue behind the rate limit, and the fast
        polls of active executions wait behind them (reaction latency of tens of seconds
        in bench/reaction.py). A stable per-workflow phase (CRC-32 of its id) spreads the
        idle polls evenly, so the request rate is flat at ``watched / period``.
        """
        phase = (zlib.crc32(wid.encode()) / 2**32) * period
        wait = (phase - now) % period
        if wait < period / 4:  # just polled near its phase (e.g. woken by a scan)
            wait += period
        return wait

    def _schedule(self, wid: str, at: float, *, hot: bool = False) -> None:
        self._due_at[wid] = at
        if hot:
            self._hot_ids.add(wid)
            heapq.heappush(self._hot, (at, wid))
        else:
            self._hot_ids.discard(wid)
            heapq.heappush(self._queue, (at, wid))

"""The daemon: wires settings, policy, journal, clients and loops under one TaskGroup.

Lifecycle (issue #6): settings and policy errors surface before anything runs (exit 2);
SIGTERM/SIGINT stop new writes at once, let in-flight writes finish (their outcome is
journaled, shielded) and exit 0 well inside 10 s; SIGHUP or a changed policy file
reloads, keeping the old policy when the new one is invalid. Every long-lived loop runs
under ``supervised`` so a crash is logged and the loop restarted with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.cloud.client import AomClient
from daemon.engine.bundle import Bundle, load_bundle
from daemon.engine.connect import StartEmulator, connect, register_account_secrets
from daemon.engine.executor import Executor
from daemon.engine.handle import ExecutionHandler
from daemon.engine.notify import Notifier
from daemon.engine.policyref import PolicyRef
from daemon.engine.resolution import ReadBack, Sweeper
from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.engine.schedule_runner import ScheduleRunner
from daemon.engine.supervise import supervised
from daemon.engine.trigger_reconciler import TriggerReconciler
from daemon.engine.wake import Waker
from daemon.engine.watcher import Watcher
from daemon.journal.sqlite import SqliteJournal
from daemon.kernel.clock import SYSTEM_CLOCK, Clock, SystemClock
from daemon.kernel.errors import CloudError
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.ops import sdnotify
from daemon.ops.health import HealthState
from daemon.ops.leader import AlwaysLeader, LeaderElector
from daemon.ops.leader_config import elector_from_settings
from daemon.ops.logging import configure_logging
from daemon.ops.metrics import Metrics
from daemon.ops.server import HealthServer
from daemon.settings import Account, Settings

log = structlog.get_logger("aomd.daemon")

STOP_GRACE_SECONDS = 6.0
"""In-flight writes get this long after SIGTERM; the unit's TimeoutStopSec is 10 s."""
RELOAD_POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 5.0
"""Reconcile loops wake at least this often (real seconds) to heartbeat and check dues."""
RETENTION_PERIOD_SECONDS = 3600.0


@dataclass
class AccountRuntime:
    account: Account
    client: AomClient
    watcher: Watcher
    handler: ExecutionHandler
    triggers: TriggerReconciler
    schedules: ScheduleRunner
    sweeper: Sweeper


@dataclass
class Daemon:
    settings: Settings
    dry_run: bool = False
    once: bool = False
    on_ready: Callable[[Daemon], None] | None = None
    clock: Clock = field(default_factory=SystemClock)
    """May be emulated (the embedded emulator's, or a test's)."""
    wall: Clock = SYSTEM_CLOCK
    """Real time, for what operators read (metric timestamps) and wall-clock timers."""
    speed: float = 1.0
    start_emulator: StartEmulator | None = None
    """How the command that composed the daemon starts the embedded emulator."""
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    wakers: list[Waker] = field(default_factory=list)
    accounts: list[AccountRuntime] = field(default_factory=list)
    executor: Executor = field(init=False)
    http_port: int | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.dry_run = self.dry_run or s.safety.dry_run
        self.metrics = Metrics()
        self.health = HealthState()
        self.policy = PolicyRef(s.policies_dir, load_bundle)
        self.journal = SqliteJournal(s.journal_path())
        self.notifier = Notifier(s.notify_webhook)
        self.elector: LeaderElector = AlwaysLeader()

    # -- policy ----------------------------------------------------------------------------

    @property
    def bundle(self) -> Bundle:
        assert self.policy.current is not None
        bundle: Bundle = self.policy.current.policy
        return bundle

    def reload(self, reason: str) -> bool:
        ok = self.policy.reload(reason=reason)
        self._reloaded(ok)
        return ok

    def _reloaded(self, ok: bool) -> None:
        """On the event loop only: ``asyncio.Event.set`` from a worker thread is not
        thread-safe (and does not wake the selector)."""
        self.metrics.policy_reload(ok)
        if ok:
            for rt in self.accounts:
                rt.watcher.request_discovery()
            for waker in self.wakers:
                waker.event.set()  # recompute next transitions with the new policy

    # -- assembly --------------------------------------------------------------------------

    def _executor(self) -> Executor:
        s = self.settings.safety
        return Executor(
            journal=self.journal,
            clock=self.clock,
            blast=BlastRadius(s.max_writes_per_minute, s.max_writes_per_minute_per_workflow),
            breaker=CircuitBreaker(
                s.breaker_error_ratio, s.breaker_min_calls, s.breaker_cooldown_seconds
            ),
            leader=self.elector,
            dry_run=self.dry_run,
            on_outcome=self._on_outcome,
        )

    def _on_call(self, operation: str, status: str, seconds: float) -> None:
        self.metrics.api_call(operation, status, seconds)
        if status.isdigit() and int(status) < 500:
            # The cloud answered (even a 4xx is an answer): it is reachable.
            self.health.cloud_ok()

    def _on_outcome(self, intent: WriteIntent, report: WriteReport) -> None:
        self.metrics.write(intent.kind, report.outcome)

    def _unhandled_changed(self, _count: int) -> None:
        """One gauge for all accounts: each handler knows only its own count, so the
        gauge is the sum (set from one handler's count it showed the last poller's)."""
        self.metrics.set_unhandled_pauses(sum(len(rt.handler.unhandled) for rt in self.accounts))

    def _assemble(self, account: Account, client: AomClient, executor: Executor) -> AccountRuntime:
        w = self.settings.watch
        read_back = ReadBack(client=client, clock=self.clock)
        sweeper = Sweeper(
            read_back=read_back,
            journal=self.journal,
            executor=executor,
            notifier=self.notifier,
            account=account.name,
            sole_account=len(self.settings.accounts) == 1,
        )
        handler = ExecutionHandler(
            client=client,
            journal=self.journal,
            read_back=read_back,
            executor=executor,
            clock=self.clock,
            notifier=self.notifier,
            rules=lambda: self.bundle.rules,
            calendars=lambda: self.bundle.calendars,
            on_unhandled=self._unhandled_changed,
        )

        watcher = Watcher(
            client=client,
            clock=self.clock,
            handler=handler,
            scope=lambda: self.bundle.policy.watches,
            fast_interval=w.fast_interval,
            slow_interval=w.slow_interval,
            discovery_interval=w.discovery_interval,
            concurrency=w.concurrency,
            speed=self.speed,
            on_cycle=lambda stats: self.metrics.poll_cycle(stats.last_cycle_seconds),
            retire=handler.retire,
            # beats from the watcher's own loop, so a stuck watcher goes stale on /healthz
            on_tick=partial(self.health.beat, f"watch:{account.name}"),
        )
        triggers = TriggerReconciler(
            client=client,
            ownership=self.journal,
            executor=executor,
            read_back=read_back,
            account=account.name,
        )
        schedules = ScheduleRunner(
            client=client,
            journal=self.journal,
            executor=executor,
            read_back=read_back,
            account=account.name,
            default_workspace=account.workspace,
            notifier=self.notifier,
        )
        return AccountRuntime(account, client, watcher, handler, triggers, schedules, sweeper)

    # -- loops -----------------------------------------------------------------------------

    async def _reconcile_loop(
        self,
        name: str,
        waker: Waker,
        step: Callable[[Bundle, datetime], Awaitable[datetime | None]],
    ) -> None:
        """Level-triggered: run ``step`` on start-up, when the waker's instant (the next
        calendar transition or fire time) is reached, after a reload, and every
        ``reconcile_interval`` as a safety net; heartbeat in between."""
        last_run = -float("inf")
        last_version = -1
        while True:
            version = self.policy.current.version if self.policy.current else 0
            armed = waker.armed_for
            due = (
                version != last_version
                or (armed is not None and self.clock.now() >= armed)
                or self.clock.monotonic() - last_run >= self.settings.reconcile_interval
            )
            if due:
                last_run, last_version = self.clock.monotonic(), version
                now = self.clock.now()
                try:
                    waker.arm(await step(self.bundle, now))
                except CloudError as exc:
                    log.warning(
                        f"{name}_failed",
                        error=type(exc).__name__,
                        error_code=exc.error_code,
                        request_id=exc.request_id,
                    )
                    waker.arm(now + timedelta(seconds=5 * self.speed))
            self.health.beat(f"{name}:{waker.name.split(':', 1)[-1]}")
            await waker.wait(seconds=min(HEARTBEAT_SECONDS, self.settings.reconcile_interval))

    def _trigger_step(
        self, rt: AccountRuntime
    ) -> Callable[[Bundle, datetime], Awaitable[datetime | None]]:
        async def step(bundle: Bundle, now: datetime) -> datetime | None:
            drifts = rt.triggers.drifts
            await rt.triggers.reconcile(bundle.triggers, bundle.calendars, now)
            self.metrics.drift(rt.triggers.drifts - drifts)
            self.metrics.set_triggers_owned(rt.triggers.owned_count)
            self.metrics.reconciled(self.wall.now().timestamp())
            nxt = bundle.next_trigger_transition(now)
            # one second past the transition so ``active_at`` already reads the new state
            return nxt + timedelta(seconds=1) if nxt else None

        return step

    def _schedule_step(
        self, rt: AccountRuntime
    ) -> Callable[[Bundle, datetime], Awaitable[datetime | None]]:
        async def step(bundle: Bundle, now: datetime) -> datetime | None:
            await rt.schedules.tick(bundle.schedules, bundle.calendars, bundle.sources, now)
            return rt.schedules.next_fire(bundle.schedules, bundle.calendars, bundle.sources, now)

        return step

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_POLL_SECONDS)
            self.health.beat("reload")
            if self.policy.changed_on_disk():
                # parse in a thread; touch loop objects (events) back on the loop
                ok = await asyncio.to_thread(self.policy.reload, reason="file changed")
                self._reloaded(ok)

    async def _retention_loop(self) -> None:
        days = self.settings.journal.retention_days
        while True:
            pruned = await self.journal.prune(self.clock.now() - timedelta(days=days))
            if pruned:
                log.info("journal_pruned", rows=pruned, older_than_days=days)
            await asyncio.sleep(RETENTION_PERIOD_SECONDS)

    async def _ready_when_reconciled(self) -> None:
        """READY=1 after the first successful discovery of every account."""
        for rt in self.accounts:
            await rt.watcher.discovered.wait()
        sdnotify.ready()
        sdnotify.status(
            f"watching {sum(rt.watcher.stats.watched for rt in self.accounts)} workflows"
        )
        log.info("daemon_ready", dry_run=self.dry_run, http_port=self.http_port)
        if self.on_ready is not None:
            self.on_ready(self)

    async def _metrics_loop(self) -> None:
        seen = 0
        while True:
            ex = self.executor
            self.metrics.set_blast_radius_tripped(ex.blast_tripped)
            self.metrics.set_breaker_open(ex.breaker.is_open(self.clock.monotonic()))
            leader = self.elector.may_write()
            self.metrics.set_leader(leader)
            self.health.set_leader(leader)
            total = sum(rt.watcher.stats.executions_seen for rt in self.accounts)
            if total > seen:
                self.metrics.execution_seen(total - seen)
            seen = total
            self.health.beat("metrics")
            await asyncio.sleep(1.0)

    # -- run -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload("SIGHUP"))

    def request_stop(self, why: str = "requested") -> None:
        if not self.stop_event.is_set():
            log.info("daemon_stopping", reason=why)
            sdnotify.stopping()
            self.stop_event.set()

    async def run(self) -> int:
        s = self.settings
        configure_logging(s.log)
        # APScheduler logs every job add/remove at INFO; our wakers re-arm constantly.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        register_account_secrets(s)
        self.policy.load_initial()  # ConfigError -> exit 2 before anything runs
        if not self.once:
            # Before the first await: a SIGHUP during start-up (journal, emulator, ops
            # server) would otherwise get the default action and kill the process; a
            # SIGTERM then is honoured once start-up is done (run returns 0).
            self._install_signals()
        self.health.set_policy_loaded(True)
        if self.notifier.default_url is None:
            self.notifier.default_url = self.bundle.webhook
        await self.journal.open()
        scheduler = AsyncIOScheduler(timezone="UTC")
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.journal.close)
            cloud = await connect(
                s, stack, start_emulator=self.start_emulator, on_call=self._on_call
            )
            if cloud.clock is not None:
                self.clock = cloud.clock
                self.speed = s.emulator.speed if s.emulator.speed > 0 else 1.0
            if s.leader.enabled:
                self.elector = elector_from_settings(s.leader)
            self.executor = self._executor()
            for acc in cloud.accounts:
                self.accounts.append(self._assemble(acc.account, acc.client, self.executor))
            if self.once:
                return await self._run_once()
            if s.http.enabled:
                server = HealthServer(s.http.host, s.http.port, self.metrics, self.health)
                self.http_port = await server.start()
                stack.push_async_callback(server.stop)
            scheduler.start()
            stack.callback(scheduler.shutdown, wait=False)
            await self._serve(scheduler)
        log.info("daemon_stopped")
        return 0

    async def _serve(self, scheduler: AsyncIOScheduler) -> None:
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("reload", self._reload_loop),
            ("retention", self._retention_loop),
            ("metrics", self._metrics_loop),
            ("notifier", self.notifier.run),
            ("leader", self.elector.run),
        ]
        for rt in self.accounts:
            tw = Waker(
                scheduler, f"triggers:{rt.account.name}", self.clock, self.speed, wall=self.wall
            )
            sw = Waker(
                scheduler, f"schedules:{rt.account.name}", self.clock, self.speed, wall=self.wall
            )
            self.wakers += [tw, sw]
            loops += [
                (f"watch:{rt.account.name}", rt.watcher.run),
                (f"resolve:{rt.account.name}", rt.sweeper.run),
                (
                    f"triggers:{rt.account.name}",
                    partial(self._reconcile_loop, "triggers", tw, self._trigger_step(rt)),
                ),
                (
                    f"schedules:{rt.account.name}",
                    partial(self._reconcile_loop, "schedules", sw, self._schedule_step(rt)),
                ),
            ]
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(supervised(name, body), name=name) for name, body in loops]
                tasks.append(tg.create_task(sdnotify.watchdog_loop(self._healthy)))
                tasks.append(tg.create_task(self._ready_when_reconciled()))
                await self.stop_event.wait()
                await self._drain()
                for task in tasks:
                    task.cancel()
        except* asyncio.CancelledError:
            pass

    def _healthy(self) -> bool:
        return self.health.healthy()

    async def _drain(self) -> None:
        """No new writes; give in-flight ones a bounded time to finish and be journaled."""
        ex = self.executor
        ex.stopping = True
        deadline = self.clock.monotonic() + STOP_GRACE_SECONDS
        # Polling a counter (not an Event): in-flight writes live in many tasks and the
        # executor must stay free of shutdown plumbing.
        while ex.in_flight and self.clock.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if ex.in_flight:
            log.warning("stopping_with_writes_in_flight", in_flight=ex.in_flight)

    async def _run_once(self) -> int:
        """One full pass (discover, poll every watched workflow, triggers, schedules)."""
        now = self.clock.now()
        failures = 0
        for rt in self.accounts:
            try:
                await rt.watcher.discover()
                await rt.watcher.poll_all()
                b = self.bundle
                await rt.triggers.reconcile(b.triggers, b.calendars, now)
                await rt.schedules.tick(b.schedules, b.calendars, b.sources, now)
            except CloudError as exc:
                failures += 1
                log.error(
                    "once_failed",
                    account=rt.account.name,
                    error=type(exc).__name__,
                    request_id=exc.request_id,
                )
        # --once runs no notifier task: deliver what the pass queued before exiting
        await self.notifier.flush()
        return 1 if failures else 0


async def run_daemon(settings: Settings, *, dry_run: bool = False, once: bool = False) -> int:
    daemon = Daemon(settings, dry_run=dry_run, once=once)
    return await daemon.run()

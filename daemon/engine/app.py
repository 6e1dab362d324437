"""The daemon: wires settings, policy, journal, clients and loops under one TaskGroup.

Lifecycle: settings and policy errors surface before anything runs (exit 2);
SIGTERM/SIGINT stop new writes at once, let in-flight writes finish (their outcome is
journaled, shielded) and exit 0 well inside 10 s; SIGHUP or a changed policy file
reloads, keeping the old policy when the new one is invalid. Every long-lived loop runs
under ``supervised`` so a crash is logged and the loop restarted with backoff.

The parts live beside this module: ``assemble`` (building), ``reload`` (the policy in
force), ``reconcile_loop`` (triggers and schedules), ``metrics_pump``, ``retention``,
``signals``, ``drain`` (stopping) and ``once`` (``--once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.engine.assemble import AccountRuntime, assemble_account, build_executor
from daemon.engine.connect import StartEmulator, connect, journal_for, register_account_secrets
from daemon.engine.drain import drain
from daemon.engine.executor import Executor
from daemon.engine.metrics_pump import MetricsPump
from daemon.engine.notify import Notifier
from daemon.engine.once import run_once
from daemon.engine.reconcile_loop import reconcile_loop, schedule_step, trigger_step
from daemon.engine.reload import PolicyRef, reload_on_change
from daemon.engine.retention import RETENTION_PERIOD_SECONDS, prune_forever
from daemon.engine.signals import install_signal_handlers
from daemon.engine.supervise import supervised
from daemon.engine.wake import Waker
from daemon.kernel.clock import SYSTEM_CLOCK, Clock, SystemClock
from daemon.kernel.errors import ConfigError
from daemon.ops import memtrace, sdnotify
from daemon.ops.health import HealthState
from daemon.ops.leader import AlwaysLeader, LeaderElector
from daemon.ops.leader_config import elector_from_settings
from daemon.ops.logging import configure_logging
from daemon.ops.metrics import Metrics
from daemon.ops.server import HealthServer
from daemon.settings import Settings

log = structlog.get_logger("aomd.daemon")


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
        self.pump = MetricsPump(self.metrics, self.health, self.accounts)
        self.policy = PolicyRef(s.policies_dir)
        self.journal = journal_for(s)
        self.notifier = Notifier(s.notify_webhook)
        self.elector: LeaderElector = AlwaysLeader()

    def _leadership(self, gained: bool) -> None:
        """A replica that becomes the leader (or gains a shard) reconciles at once, not
        at its next look: a leader may not live long, and a freeze edge must not wait
        for it. With shards the watchers' scope changed too: look again now."""
        if gained:
            for waker in self.wakers:
                waker.nudge()
            for rt in self.accounts:
                rt.sweeper.nudge()
        if self.elector.shards is not None:
            for rt in self.accounts:
                rt.watcher.request_discovery()

    # -- policy ----------------------------------------------------------------------------

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

    # -- run -------------------------------------------------------------------------------

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
        for warning in s.warnings():
            log.warning("config_warning", warning=warning)
        self.policy.load_initial()  # ConfigError -> exit 2 before anything runs
        if self.once and s.leader.enabled:
            raise ConfigError(
                "aomd run --once takes no Lease: beside running replicas it could write what "
                "they write, and without the Lease it writes nothing; set "
                "AOMD_LEADER__ENABLED=false for a one-off pass, and only while no replica runs"
            )
        if not self.once:
            # Before the first await: see ``daemon.engine.signals``.
            install_signal_handlers(stop=self.request_stop, reload=partial(self.reload, "SIGHUP"))
            memtrace.install_from_env()
        self.health.set_policy_loaded(True)
        if self.notifier.default_url is None:
            self.notifier.default_url = self.policy.current.webhook
        await self.journal.open()
        scheduler = AsyncIOScheduler(timezone="UTC")
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.journal.close)
            cloud = await connect(
                s, stack, start_emulator=self.start_emulator, on_call=self.pump.on_call
            )
            if cloud.clock is not None:
                self.clock = cloud.clock
                self.speed = s.emulator.speed if s.emulator.speed > 0 else 1.0
            if s.leader.enabled:
                self.elector = elector_from_settings(
                    s.leader,
                    on_change=self._leadership,
                    shard_plan={a.name: a.shards for a in s.accounts},
                )
            self.executor = build_executor(
                s.safety,
                journal=self.journal,
                clock=self.clock,
                leader=self.elector,
                dry_run=self.dry_run,
                on_outcome=self.pump.on_outcome,
            )
            for acc in cloud.accounts:
                self.accounts.append(
                    assemble_account(
                        acc.account,
                        acc.client,
                        policy=self.policy,
                        watch=s.watch,
                        journal=self.journal,
                        executor=self.executor,
                        clock=self.clock,
                        speed=self.speed,
                        notifier=self.notifier,
                        sole_account=len(s.accounts) == 1,
                        on_unhandled=self.pump.on_unhandled,
                        on_cycle=self.pump.on_cycle,
                        beat=self.health.beat,
                        elector=self.elector,
                    )
                )
            if self.once:
                return await run_once(self.accounts, self.policy, self.clock, self.notifier)
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
        """Every loop in one TaskGroup until a stop is requested; then drain and cancel
        them. A cancellation from outside (the caller cancelling ``run``) propagates."""
        s = self.settings
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (
                "reload",
                partial(
                    reload_on_change,
                    self.policy,
                    on_reloaded=self._reloaded,
                    beat=partial(self.health.beat, "reload"),
                ),
            ),
            (
                "retention",
                partial(
                    prune_forever,
                    self.journal,
                    self.clock,
                    s.journal.retention_days,
                    compact_after=timedelta(hours=s.journal.compact_after_hours),
                    on_size=self.metrics.set_journal_bytes,
                    # hourly on the daemon's clock (an accelerated emulator's too)
                    period=RETENTION_PERIOD_SECONDS / self.speed,
                ),
            ),
            ("metrics", partial(self.pump.run, self.executor, self.elector, self.clock)),
            ("notifier", self.notifier.run),
            ("leader", self.elector.run),
        ]
        reconcile = partial(
            reconcile_loop,
            policy=self.policy,
            clock=self.clock,
            interval=s.reconcile_interval,
            speed=self.speed,
            beat=self.health.beat,
        )
        for rt in self.accounts:
            name = rt.account.name
            tw = Waker(scheduler, f"triggers:{name}", self.clock, self.speed, wall=self.wall)
            sw = Waker(scheduler, f"schedules:{name}", self.clock, self.speed, wall=self.wall)
            self.wakers += [tw, sw]
            loops += [
                (f"watch:{name}", rt.watcher.run),
                (f"resolve:{name}", rt.sweeper.run),
                (
                    f"triggers:{name}",
                    partial(
                        reconcile,
                        "triggers",
                        tw,
                        trigger_step(rt, self.metrics, self.wall),
                        poll=rt.overrides.changed,
                        leading=rt.leads_triggers,
                    ),
                ),
                (
                    f"schedules:{name}",
                    partial(
                        reconcile, "schedules", sw, schedule_step(rt), leading=rt.leads_schedules
                    ),
                ),
            ]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(supervised(name, body), name=name) for name, body in loops]
            tasks.append(tg.create_task(sdnotify.watchdog_loop(self.health.healthy)))
            tasks.append(tg.create_task(self._ready_when_reconciled()))
            await self.stop_event.wait()
            await drain(self.executor, self.clock)
            for task in tasks:
                task.cancel()

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

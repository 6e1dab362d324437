"""Building the running parts from settings: the executor, and per account the handler,
watcher, trigger reconciler and schedule runner around one client.

Each part reads the policy in force through a callable (``policy.current`` at call
time), so a reload reaches every account without rebuilding anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from daemon.cloud.client import AomClient
from daemon.engine.executor import Executor
from daemon.engine.handle import ExecutionHandler
from daemon.engine.notify import Notifier
from daemon.engine.overrides import OverrideBook
from daemon.engine.reload import PolicyRef
from daemon.engine.resolution import ReadBack, Sweeper
from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.engine.schedule_runner import ScheduleRunner
from daemon.engine.trigger_reconciler import TriggerReconciler
from daemon.engine.watcher import Watcher, WatchStats
from daemon.engine.write_retry import WriteRetryPolicy
from daemon.journal.store import Journal
from daemon.kernel.clock import Clock
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.ops.leader import LeaderElector
from daemon.settings import Account, SafetySettings, WatchSettings


@dataclass
class AccountRuntime:
    account: Account
    client: AomClient
    watcher: Watcher
    handler: ExecutionHandler
    triggers: TriggerReconciler
    schedules: ScheduleRunner
    sweeper: Sweeper
    overrides: OverrideBook


def build_executor(
    safety: SafetySettings,
    *,
    journal: Journal,
    clock: Clock,
    leader: LeaderElector,
    dry_run: bool,
    on_outcome: Callable[[WriteIntent, WriteReport], None],
) -> Executor:
    return Executor(
        journal=journal,
        clock=clock,
        blast=BlastRadius(safety.max_writes_per_minute, safety.max_writes_per_minute_per_workflow),
        breaker=CircuitBreaker(
            safety.breaker_error_ratio, safety.breaker_min_calls, safety.breaker_cooldown_seconds
        ),
        leader=leader,
        dry_run=dry_run,
        on_outcome=on_outcome,
        retry=WriteRetryPolicy(
            retries=safety.write_retries,
            initial=safety.write_retry_initial_seconds,
            cap=safety.write_retry_max_seconds,
        ),
    )


def assemble_account(
    account: Account,
    client: AomClient,
    *,
    policy: PolicyRef,
    watch: WatchSettings,
    journal: Journal,
    executor: Executor,
    clock: Clock,
    speed: float,
    notifier: Notifier,
    sole_account: bool,
    on_unhandled: Callable[[int], None],
    on_cycle: Callable[[WatchStats], None],
    beat: Callable[[str], None],
) -> AccountRuntime:
    read_back = ReadBack(client=client, clock=clock)
    book = OverrideBook(journal=journal, notifier=notifier)
    sweeper = Sweeper(
        read_back=read_back,
        journal=journal,
        executor=executor,
        notifier=notifier,
        account=account.name,
        sole_account=sole_account,
    )
    handler = ExecutionHandler(
        client=client,
        journal=journal,
        read_back=read_back,
        executor=executor,
        clock=clock,
        notifier=notifier,
        rules=lambda: book.rules(policy.current.for_account(account.name).rules, clock.now()),
        calendars=lambda: book.calendars(policy.current),
        on_unhandled=on_unhandled,
        overrides=book,
    )
    watcher = Watcher(
        client=client,
        clock=clock,
        handler=handler,
        scope=lambda: policy.current.for_account(account.name).watches,
        fast_interval=watch.fast_interval,
        slow_interval=watch.slow_interval,
        discovery_interval=watch.discovery_interval,
        concurrency=watch.concurrency,
        speed=speed,
        on_cycle=on_cycle,
        retire=handler.retire,
        # beats from the watcher's own loop, so a stuck watcher goes stale on /healthz
        on_tick=partial(beat, f"watch:{account.name}"),
    )
    triggers = TriggerReconciler(
        client=client,
        ownership=journal,
        executor=executor,
        read_back=read_back,
        account=account.name,
        streaks=journal,
        notifier=notifier,
        journal=journal,
    )
    schedules = ScheduleRunner(
        client=client,
        journal=journal,
        executor=executor,
        read_back=read_back,
        account=account.name,
        default_workspace=account.workspace,
        notifier=notifier,
    )
    return AccountRuntime(account, client, watcher, handler, triggers, schedules, sweeper, book)

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
from daemon.engine.watcher import Scope, Watcher, WatchStats
from daemon.engine.write_retry import WriteRetryPolicy
from daemon.journal.store import Journal
from daemon.kernel.clock import Clock
from daemon.kernel.shards import Shard, shard_of
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
    leads_triggers: Callable[[], object]
    """Holds the shard of any of the account's workflows (or is the one leader)."""
    leads_schedules: Callable[[], bool]
    """Holds the shard the account's schedules belong to (or is the one leader)."""


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
    elector: LeaderElector,
) -> AccountRuntime:
    split = account_shards(account, elector)
    read_back = ReadBack(client=client, clock=clock)
    book = OverrideBook(journal=journal, notifier=notifier)
    sweeper = Sweeper(
        read_back=read_back,
        journal=journal,
        executor=executor,
        notifier=notifier,
        account=account.name,
        sole_account=sole_account,
        shard_of=split.shard_of,
        schedule_shard=split.schedule_shard,
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
        shard_of=split.shard_of,
    )
    watcher = Watcher(
        client=client,
        clock=clock,
        handler=handler,
        scope=lambda: split.narrow(policy.current.for_account(account.name).watches),
        fast_interval=watch.fast_interval,
        slow_interval=watch.slow_interval,
        discovery_interval=watch.discovery_interval,
        idle_interval=watch.idle_interval,
        # the periods are planned to fit the account's rate limit (watch_budget)
        requests_per_second=account.requests_per_second,
        account=account.name,
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
        shard_of=split.shard_of,
        mine=split.mine,
    )
    schedules = ScheduleRunner(
        client=client,
        journal=journal,
        executor=executor,
        read_back=read_back,
        account=account.name,
        default_workspace=account.workspace,
        notifier=notifier,
        shard_of=lambda _wid: split.schedule_shard,
    )
    return AccountRuntime(
        account,
        client,
        watcher,
        handler,
        triggers,
        schedules,
        sweeper,
        book,
        leads_triggers=split.leads_any,
        leads_schedules=split.leads_schedules,
    )


@dataclass(frozen=True)
class AccountShards:
    """How one account's work splits between replicas, as the parts need it."""

    elector: LeaderElector
    shards: tuple[Shard, ...]
    """Empty when the replicas do not shard (one leader does everything)."""

    @property
    def schedule_shard(self) -> Shard | None:
        return self.shards[0] if self.shards else None

    def shard_of(self, workflow_id: str) -> Shard | None:
        if not self.shards:
            return None
        first = self.shards[0]
        return shard_of(first.account, workflow_id, first.of)

    def mine(self, workflow_id: str) -> bool:
        """Whether this replica holds the workflow's shard (always, unsharded)."""
        return not self.shards or self.elector.may_write(self.shard_of(workflow_id))

    def leads_any(self) -> frozenset[Shard] | bool:
        """The account's shards held here (unsharded: whether this is the leader)."""
        if not self.shards:
            return self.elector.may_write()
        return frozenset(s for s in self.shards if self.elector.may_write(s))

    def leads_schedules(self) -> bool:
        return self.elector.may_write(self.schedule_shard)

    def narrow(self, scope: Scope) -> Scope:
        """The watcher's scope, cut down to the workflows of the shards held here: a
        replica polls only what it may act on."""
        if not self.shards:
            return scope
        return lambda wf: scope(wf) and self.mine(wf.id)


def account_shards(account: Account, elector: LeaderElector) -> AccountShards:
    if elector.shards is None:
        return AccountShards(elector, ())
    return AccountShards(
        elector, tuple(Shard(account.name, b, account.shards) for b in range(account.shards))
    )

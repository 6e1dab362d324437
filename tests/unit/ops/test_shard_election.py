"""Sharded election: replicas split the shards, hand them over and take a dead one's,
and two replicas never may write for the same shard at the same moment."""

from __future__ import annotations

import asyncio
import contextlib
import random

from daemon.kernel.shards import Shard, all_shards, assign
from daemon.ops.lease_election import LeaseElector, LeaseTiming
from daemon.ops.shard_election import ShardElector
from tests.support.clocks import FakeClock
from tests.support.leases import MemoryLeaseClient, MemoryLeaseStore

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=5)
PLAN = {f"acc{i}": 1 for i in range(5)} | {"big": 3}
SHARDS = all_shards(PLAN)
SETTLE = 8
"""Periods for a fleet to settle: a start-up where every replica first sees only itself
and grabs what is free, then hands shards over by letting their Leases run out (15 s)."""


class Fleet:
    def __init__(self) -> None:
        self.clock = FakeClock(mono=100.0)
        self.store = MemoryLeaseStore()
        self.replicas: dict[str, ShardElector] = {}
        self.clients: dict[str, MemoryLeaseClient] = {}
        self.dead: set[str] = set()
        self.changes: list[tuple[str, bool]] = []

    def add(self, name: str) -> ShardElector:
        client = self.store.client()
        el = ShardElector(
            client,
            group="aomd",
            namespace="ns",
            identity=name,
            timing=TIMING,
            plan=PLAN,
            clock=self.clock.monotonic,
            now=self.clock.now,
            on_change=lambda gained: self.changes.append((name, gained)),
        )
        self.replicas[name], self.clients[name] = el, client
        return el

    async def period(self, n: int = 1, *, shuffle: random.Random | None = None) -> None:
        for _ in range(n):
            order = list(self.replicas.items())
            if shuffle is not None:  # who looks right after whose renew varies
                shuffle.shuffle(order)
            for name, el in order:
                if name not in self.dead:
                    await el.step()
            self.assert_one_writer_per_shard()
            self.clock.advance(TIMING.retry_period)

    def assert_one_writer_per_shard(self) -> None:
        for shard in SHARDS:
            writers = [
                n for n, el in self.replicas.items() if n not in self.dead and el.may_write(shard)
            ]
            # a dead replica's clock stops with it: it cannot write, whatever it believes
            assert len(writers) <= 1, (shard, writers)

    def holders(self) -> dict[Shard, str]:
        return {
            s: n
            for s in SHARDS
            for n, el in self.replicas.items()
            if n not in self.dead and el.may_write(s)
        }


async def test_three_replicas_split_the_shards_as_rendezvous_prefers() -> None:
    fleet = Fleet()
    for name in ("r0", "r1", "r2"):
        fleet.add(name)
    await fleet.period(SETTLE)
    holders = fleet.holders()
    assert set(holders) == set(SHARDS)
    assert holders == assign(SHARDS, ["r0", "r1", "r2"])
    assert all(el.live_members == {"r0", "r1", "r2"} for el in fleet.replicas.values())
    assert sorted(list(holders.values()).count(n) for n in ("r0", "r1", "r2")) == [2, 3, 3]


async def test_a_replica_joining_later_is_handed_its_shards() -> None:
    fleet = Fleet()
    first = fleet.add("r0")
    await fleet.period(2)
    assert all(first.may_write(s) for s in SHARDS)  # alone: everything
    fleet.add("r1")
    await fleet.period(SETTLE)
    holders = fleet.holders()
    assert set(holders) == set(SHARDS)
    assert holders == assign(SHARDS, ["r0", "r1"])
    assert ("r1", True) in fleet.changes


async def test_a_dead_replicas_shards_move_within_the_lease_duration_and_not_before() -> None:
    fleet = Fleet()
    for name in ("r0", "r1", "r2"):
        fleet.add(name)
    await fleet.period(SETTLE)
    victim = "r1"
    orphans = {s for s, n in fleet.holders().items() if n == victim}
    assert orphans
    fleet.dead.add(victim)
    killed_at = fleet.clock.monotonic()
    taken_at: dict[Shard, float] = {}
    for _ in range(8):
        await fleet.period()
        for s in fleet.holders():
            if s in orphans and s not in taken_at:
                taken_at[s] = fleet.clock.monotonic() - TIMING.retry_period  # when it stepped
    assert set(taken_at) == orphans
    for s, at in taken_at.items():
        # not before the dead holder's term could have run out; within one more period
        assert killed_at + TIMING.lease_duration - TIMING.retry_period <= at
        assert at <= killed_at + TIMING.lease_duration + TIMING.retry_period, (s, at - killed_at)
    assert fleet.holders() == assign(SHARDS, ["r0", "r2"])


async def test_a_replica_cut_off_from_the_api_stops_writing_before_others_take_over() -> None:
    fleet = Fleet()
    for name in ("r0", "r1"):
        fleet.add(name)
    await fleet.period(SETTLE)
    fleet.clients["r0"].cut = True
    r0 = fleet.replicas["r0"]
    mine = {s for s in SHARDS if r0.may_write(s)}
    assert mine
    for _ in range(6):
        await fleet.period()
    assert not any(r0.may_write(s) for s in SHARDS)
    assert set(fleet.holders()) == set(SHARDS)  # r1 took them, one writer at a time


async def test_a_write_that_names_no_shard_is_refused() -> None:
    fleet = Fleet()
    el = fleet.add("r0")
    await fleet.period(2)
    assert el.is_leader
    assert not el.may_write(None)
    assert not el.may_write(Shard("unknown"))
    assert el.may_write(Shard("big", 2, 3))


async def test_slow_api_calls_never_give_two_replicas_one_shard() -> None:
    """Every call takes 0.1 s of the shared clock (the in-memory calls run one after
    another, so a period costs seconds); at every call, not only between periods, no
    shard may have two writers, through a start-up, hand-overs and a death."""
    fleet = Fleet()
    for name in ("r0", "r1", "r2"):
        fleet.add(name)

    def slow() -> None:
        fleet.clock.advance(0.1)
        fleet.assert_one_writer_per_shard()

    for client in fleet.clients.values():
        client.on_call = slow
    rng = random.Random(5)
    await fleet.period(SETTLE, shuffle=rng)
    assert set(fleet.holders()) == set(SHARDS)
    # cut off, not dead: r2 goes on believing until its renew deadline, and the others
    # must not take its shards before then
    fleet.clients["r2"].cut = True
    await fleet.period(SETTLE, shuffle=rng)
    assert fleet.holders() == assign(SHARDS, ["r0", "r1"])


async def test_a_member_with_another_plan_blocks_new_shards_until_it_is_gone() -> None:
    """A rolling update that changes the plan: the old replica keeps its shards, the
    new one takes none while the old one lives (their shards overlap), then all."""
    fleet = Fleet()
    old = fleet.add("old")
    await fleet.period(SETTLE)
    assert all(old.may_write(s) for s in SHARDS)
    client = fleet.store.client()
    new = ShardElector(
        client,
        group="aomd",
        namespace="ns",
        identity="new",
        timing=TIMING,
        plan={**PLAN, "big": 4},
        clock=fleet.clock.monotonic,
        now=fleet.clock.now,
    )
    new_shards = all_shards({**PLAN, "big": 4})
    for _ in range(SETTLE):
        await old.step()
        await new.step()
        fleet.clock.advance(TIMING.retry_period)
        assert not any(new.may_write(s) for s in new_shards)
        assert all(old.may_write(s) for s in SHARDS)  # the old one goes on working
    await old._release_all()  # a rolling update stops it with SIGTERM
    await new.step()
    fleet.clock.advance(TIMING.retry_period)
    for _ in range(3):
        await new.step()
        fleet.clock.advance(TIMING.retry_period)
    assert all(new.may_write(s) for s in new_shards)


async def test_a_live_single_leader_blocks_sharding_until_it_stops() -> None:
    """Moving from the ha overlay: the old single leader's Lease of the same name."""
    fleet = Fleet()
    single = LeaseElector(
        fleet.store.client(),
        name="aomd",
        namespace="ns",
        identity="old-leader",
        timing=TIMING,
        clock=fleet.clock.monotonic,
        now=fleet.clock.now,
    )
    assert await single.step()
    el = fleet.add("r0")
    for _ in range(SETTLE):
        await single.step()
        await fleet.period()
        assert not el.is_leader
    await single.release()
    await fleet.period(2)
    assert all(el.may_write(s) for s in SHARDS)


async def test_stopping_gives_every_lease_back() -> None:
    fleet = Fleet()
    el = fleet.add("r0")
    task = asyncio.create_task(el.run())
    while not el.is_leader:
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not el.is_leader
    holders = {name: fleet.store.holder(name) for name in fleet.store.leases}
    assert holders
    assert set(holders.values()) == {""}, holders

"""Sharded election: replicas split the shards, hand them over and take a dead one's,
and two replicas never may write for the same shard at the same moment."""

from __future__ import annotations

from daemon.kernel.shards import Shard, all_shards, assign
from daemon.ops.lease_election import LeaseTiming
from daemon.ops.shard_election import ShardElector
from tests.support.clocks import FakeClock
from tests.support.leases import MemoryLeaseClient, MemoryLeaseStore

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=5)
PLAN = {f"acc{i}": 1 for i in range(5)} | {"big": 3}
SHARDS = all_shards(PLAN)


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

    async def period(self, n: int = 1) -> None:
        for _ in range(n):
            for name, el in self.replicas.items():
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
    await fleet.period(3)
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
    await fleet.period(3)
    holders = fleet.holders()
    assert set(holders) == set(SHARDS)
    assert holders == assign(SHARDS, ["r0", "r1"])
    assert ("r1", True) in fleet.changes


async def test_a_dead_replicas_shards_move_within_the_lease_duration_and_not_before() -> None:
    fleet = Fleet()
    for name in ("r0", "r1", "r2"):
        fleet.add(name)
    await fleet.period(3)
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
    await fleet.period(3)
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

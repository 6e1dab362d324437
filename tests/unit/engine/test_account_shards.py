"""A hash-sharded account as the engine's parts see it: every workflow is polled and
written for by exactly one replica, and the account's schedules by one."""

from __future__ import annotations

from daemon.engine.assemble import account_shards
from daemon.kernel.model import Workflow
from daemon.kernel.shards import Shard
from daemon.ops.leader import AlwaysLeader
from daemon.ops.lease_election import LeaseTiming
from daemon.ops.shard_election import ShardElector
from daemon.settings import Account
from tests.support.clocks import FakeClock
from tests.support.leases import MemoryLeaseStore

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=5)
BIG = Account(name="big", project_id="0" * 32, emulator=True, shards=4)


async def _two_replicas() -> list[ShardElector]:
    clock, store = FakeClock(mono=10.0), MemoryLeaseStore()
    replicas = [
        ShardElector(
            store.client(),
            group="g",
            namespace="ns",
            identity=name,
            timing=TIMING,
            plan={"big": 4},
            clock=clock.monotonic,
            now=clock.now,
        )
        for name in ("r0", "r1")
    ]
    for _ in range(8):
        for el in replicas:
            await el.step()
        clock.advance(TIMING.retry_period)
    return replicas


async def test_every_workflow_belongs_to_exactly_one_replica() -> None:
    views = [account_shards(BIG, el) for el in await _two_replicas()]
    workflows = [Workflow(id=f"wf-{i}", name=f"n{i}") for i in range(200)]
    everything = lambda wf: True  # noqa: E731 - the policy's scope, here all
    watched = [{wf.id for wf in workflows if v.narrow(everything)(wf)} for v in views]
    assert watched[0].isdisjoint(watched[1])
    assert watched[0] | watched[1] == {wf.id for wf in workflows}
    assert all(watched)  # both replicas have work (2 of the 4 buckets each)
    for v, mine in zip(views, watched, strict=True):
        assert {wf.id for wf in workflows if v.mine(wf.id)} == mine
        assert v.leads_any()
    assert [v.leads_schedules() for v in views].count(True) == 1
    shard = views[0].shard_of("wf-7")
    assert shard == views[1].shard_of("wf-7")
    assert isinstance(shard, Shard)
    assert shard.of == 4


async def test_unsharded_replicas_keep_the_one_leader_rule() -> None:
    view = account_shards(BIG, AlwaysLeader())
    assert view.shard_of("wf-1") is None
    assert view.schedule_shard is None
    assert view.mine("wf-1")
    assert view.leads_any()

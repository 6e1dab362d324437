"""The watcher inside an API budget, stepped through emulated minutes against the emulator.

The watcher schedules on a settable clock (``monotonic``) and is driven by ``step``; the
emulator (speed 0) moves with it, so ten minutes of a fleet take a second of test time.
Calls are counted from the emulator's ledger: what the cloud would have received.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.watch_budget import Demand, plan
from daemon.engine.watcher import Watcher
from daemon.kernel.model import Execution, Status, Workflow
from tests.support.clocks import EmulatorClock

FAST, SLOW, IDLE = 5.0, 60.0, 3600.0
QUICK = [{"id": "n", "name": "n", "kind": "task", "duration": 1}]
WORK_THEN_PAUSE = [
    {"id": "work", "name": "work", "kind": "task", "duration": 60},
    {"id": "approve", "name": "approve", "kind": "pause"},
]
FAILS = [{"id": "work", "name": "work", "kind": "task", "duration": 10, "behaviour": "fail"}]


class Fleet:
    """One watcher on a stepped clock; ``run`` moves it and the emulator together."""

    def __init__(self, emu: Emulator, client: AomClient, **kw: object) -> None:
        self.emu = emu
        self.t = 1000.0
        self.seen: list[tuple[float, str, Execution]] = []
        options: dict[str, object] = {
            "fast_interval": FAST,
            "slow_interval": SLOW,
            "idle_interval": IDLE,
            "discovery_interval": 300.0,
            "concurrency": 4,
            "requests_per_second": 10.0,
            "account": "t",
            **kw,
        }
        self.watcher = Watcher(
            client=client,
            clock=EmulatorClock.of(emu),
            handler=self._handle,
            scope=lambda: lambda wf: True,
            monotonic=lambda: self.t,
            **options,  # type: ignore[arg-type]
        )

    async def _handle(self, wf: Workflow, execution: Execution) -> datetime | None:
        self.seen.append((self.t, wf.id, execution))
        return None

    async def run(self, seconds: float, tick: float = 0.5) -> None:
        end = self.t + seconds
        while self.t < end:
            for _ in range(100):  # every pass due now (a bounded batch each)
                if await self.watcher.step() > self.t:
                    break
            self.t += tick
            self.emu.advance(tick)

    def calls_since(self, seq: int) -> int:
        return sum(1 for e in self.emu.ledger_since(seq) if e.method in ("GET", "POST", "PUT"))

    def first_seen(self, execution_id: str, status: Status) -> float | None:
        return next(
            (t for t, _, e in self.seen if e.execution_id == execution_id and e.status is status),
            None,
        )


def _idle_fleet(emu: Emulator, n: int) -> list[str]:
    """``n`` workflows with one finished execution each."""
    ids = [emu.add_workflow(name=f"wf-{i}", nodes=QUICK) for i in range(n)]
    for wid in ids:
        emu.start_execution(wid)
    emu.advance(10)
    return ids


async def test_an_idle_fleet_costs_the_scan_not_a_poll_per_workflow_a_minute(
    emu: Emulator, client: AomClient
) -> None:
    """Before: 300 idle workflows cost 300 slow polls a minute plus the scan (36 a minute
    here). The listing vouches for them, so a minute costs the scan and a safety poll
    every hour per workflow (5 a minute)."""
    _idle_fleet(emu, 300)
    fleet = Fleet(emu, client)
    await fleet.run(120)  # discovery and the start-up sweep
    assert fleet.watcher._unpolled == set()
    seq = emu.last_seq
    await fleet.run(600)
    per_minute = fleet.calls_since(seq) / 10
    assert per_minute <= 36 + 10, per_minute
    assert fleet.watcher.plan.fits


async def test_a_new_execution_is_seen_within_a_scan_period(
    emu: Emulator, client: AomClient
) -> None:
    ids = _idle_fleet(emu, 50)
    fleet = Fleet(emu, client)
    await fleet.run(60)
    wid = ids[17]
    emu.workflow(wid)  # exists
    eid = emu.start_execution(wid)
    started = fleet.t
    await fleet.run(FAST + 2)
    seen = [t for t, _, e in fleet.seen if e.execution_id == eid]
    assert seen
    assert seen[0] - started <= FAST + 1


async def test_a_stop_is_found_by_the_slow_poll_when_the_listing_lacks_the_fields(
    emu: Emulator, client: AomClient
) -> None:
    """A backend without ``last_execution_id`` and ``status`` loses the shortcut, not
    the poll: every workflow stays on the slow poll, and a pause is found by it."""
    emu.set_list_omits({"last_execution_id", "status"})
    ids = _idle_fleet(emu, 40)
    fleet = Fleet(emu, client)
    await fleet.run(60)
    assert fleet.watcher._vouched == set()
    seq = emu.last_seq
    await fleet.run(120)
    polls = sum(1 for e in emu.ledger_since(seq) if e.path.endswith("/executions"))
    assert polls >= 40 * 2 * 0.9  # each workflow every slow interval
    pausing = emu.add_workflow(name="late", nodes=[{"id": "p", "name": "p", "kind": "pause"}])
    await fleet.run(FAST)  # the scan still lists added workflows
    eid = emu.start_execution(pausing)
    emu.start_execution(ids[3])
    at = fleet.t
    await fleet.run(SLOW * 1.5)
    found = fleet.first_seen(eid, Status.PAUSING)
    assert found is not None
    assert found - at <= SLOW * 1.25 + 1


async def test_an_older_execution_that_stops_is_seen_though_the_listing_shows_a_finished_one(
    emu: Emulator, client: AomClient
) -> None:
    """The listing names only the newest execution: an older one known to be active stays
    on the fast lane until its own poll finds it finished."""
    _idle_fleet(emu, 20)
    wid = emu.add_workflow(name="two-runs", nodes=WORK_THEN_PAUSE)
    fleet = Fleet(emu, client)
    await fleet.run(30)
    older = emu.start_execution(wid)
    await fleet.run(10)
    newer = emu.start_execution(wid)
    await fleet.run(10)
    await client.terminate(wid, newer)  # a person cancels the newer run
    await fleet.run(20)  # canceled: the listing says the newest finished
    listed = {wf.id: wf for wf in await client.list_workflows()}[wid]
    assert listed.last_execution_id == newer
    assert Status.parse(listed.status).finished
    paused_at = fleet.t + (60 - 40)  # the older run's task took 60 s
    await fleet.run(40)
    found = fleet.first_seen(older, Status.PAUSING)
    assert found is not None
    assert found - paused_at <= FAST + 1


async def test_a_failed_run_retried_by_a_person_is_watched_again(
    emu: Emulator, client: AomClient
) -> None:
    """``fail`` ends the run (its listing status is finished, so it is vouched idle); a
    person's restart moves it back to running: the scan sees the status change and the
    run is polled at once; when it fails again, that is seen within a scan too."""
    emu.set_failed_execution("fail")
    _idle_fleet(emu, 20)
    wid = emu.add_workflow(name="flaky", nodes=FAILS)
    fleet = Fleet(emu, client)
    await fleet.run(30)
    eid = emu.start_execution(wid)
    await fleet.run(30)
    assert fleet.first_seen(eid, Status.FAIL) is not None
    await fleet.run(30)
    assert wid in fleet.watcher._vouched
    await client.operate(wid, eid, "restart", "work")  # the person
    at = fleet.t
    await fleet.run(FAST + 2)
    found = fleet.first_seen(eid, Status.EXECUTING)
    assert found is not None
    assert found - at <= FAST + 1
    assert wid not in fleet.watcher._vouched
    await fleet.run(10)  # the restarted node fails again 10 s after the restart
    again = [
        t for t, _, e in fleet.seen if e.execution_id == eid and e.status is Status.FAIL and t > at
    ]
    assert again
    assert again[0] - (at + 10) <= FAST + 1


async def test_a_fleet_too_large_for_the_budget_stretches_and_says_which_setting(
    emu: Emulator, client: AomClient
) -> None:
    """0.5 requests/s (24 planned calls a minute) for 400 workflows whose scan alone
    needs 48: the periods stretch so the calls stay within the budget, not queue."""
    _idle_fleet(emu, 400)
    with capture_logs() as logs:
        fleet = Fleet(emu, client, requests_per_second=0.5)
        await fleet.run(60)
    [warning] = [e for e in logs if e["event"] == "watch_budget_exceeded"]
    assert warning["setting"] == "accounts.t.requests_per_second"
    assert warning["needed_requests_per_second"] > 0.5
    p = fleet.watcher.plan
    assert p.stretch > 1.9
    assert p.scan == pytest.approx(FAST * p.stretch)
    seq = emu.last_seq
    await fleet.run(600)
    per_minute = fleet.calls_since(seq) / 10
    assert per_minute <= 0.5 * 60, per_minute


def test_the_plan_stretches_every_period_by_the_shortfall() -> None:
    fits = plan(
        Demand(pages=20, hot=15, unsure=0, vouched=2000),
        scan=5.0,
        fast=5.0,
        slow=60.0,
        idle=3600.0,
        requests_per_second=10.0,
    )
    assert fits.fits
    assert fits.scan == 5.0
    assert fits.demand * 60 < 480
    assert fits.spare == pytest.approx(8.0 - 35 / 5)
    double = plan(
        Demand(pages=40, hot=30, unsure=0, vouched=4000),
        scan=5.0,
        fast=5.0,
        slow=60.0,
        idle=3600.0,
        requests_per_second=10.0,
    )
    assert double.stretch == pytest.approx(2 * fits.demand / 8.0)
    assert double.scan == pytest.approx(5.0 * double.stretch)
    assert double.needed_requests_per_second() >= 2 * fits.demand / 0.8
    # at the stretched periods the fleet uses exactly the budget
    assert double.demand / double.stretch == pytest.approx(double.budget)
    unlimited = plan(
        Demand(pages=40, hot=30, unsure=100, vouched=0),
        scan=5.0,
        fast=5.0,
        slow=60.0,
        idle=0.0,
        requests_per_second=None,
    )
    assert unlimited.fits
    assert unlimited.slow == 60.0

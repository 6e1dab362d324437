"""Watcher against the real emulator and client: scope, intervals, isolation, detail calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine.watcher import Handler, Scope, Watcher
from daemon.kernel.model import Execution, Workflow
from tests.support.clocks import EmulatorClock

FAST, SLOW = 2.0, 30.0
LONG_TASK = [{"id": "n", "name": "n", "kind": "task", "duration": 600}]


class Seen:
    """The watcher's ``Handler``: records what it was handed; may ask for a recheck."""

    def __init__(
        self, recheck: timedelta | None = None, clock: EmulatorClock | None = None
    ) -> None:
        self.calls: list[tuple[str, Execution]] = []
        self.recheck = recheck
        self.clock = clock

    async def __call__(self, wf: Workflow, execution: Execution) -> datetime | None:
        self.calls.append((wf.name, execution))
        if self.recheck is not None and self.clock is not None:
            return self.clock.now() + self.recheck
        return None


def _in_prefix() -> Scope:
    return lambda wf: wf.name.startswith("in-")


def _watcher(
    client: AomClient, emu: Emulator, handler: Handler, speed: float = 1.0, **kw: object
) -> Watcher:
    return Watcher(
        client=client,
        clock=EmulatorClock.of(emu),
        handler=handler,
        scope=_in_prefix,
        fast_interval=FAST,
        slow_interval=SLOW,
        discovery_interval=300.0,
        concurrency=2,
        speed=speed,
        **kw,  # type: ignore[arg-type]
    )


def _gets(emu: Emulator, suffix: str) -> int:
    return sum(1 for e in emu.ledger if e.method == "GET" and e.path.endswith(suffix))


async def test_discovery_is_scoped_by_policy(emu: Emulator, client: AomClient) -> None:
    a = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    emu.add_workflow(name="out-b", nodes=LONG_TASK)
    watcher = _watcher(client, emu, Seen())
    everything = await watcher.discover()
    assert {wf.name for wf in everything} == {"in-a", "out-b"}
    assert set(watcher.workflows) == {a}
    assert watcher.discovered.is_set()
    assert watcher.stats.watched == 1


async def test_active_workflow_polled_fast_idle_slow(emu: Emulator, client: AomClient) -> None:
    busy = emu.add_workflow(name="in-busy", nodes=LONG_TASK)
    idle = emu.add_workflow(name="in-idle", nodes=LONG_TASK)
    emu.start_execution(busy)
    seen = Seen()
    # without the change scan the listing vouches for nothing: idle means the slow poll
    # (the vouched idle lane is in test_watcher_budget.py)
    watcher = _watcher(client, emu, seen, scan_interval=0)
    await watcher.discover()
    loop = asyncio.get_running_loop()
    before = loop.time()
    await watcher.poll_all()
    after = loop.time()
    assert before + FAST <= watcher._due_at[busy] <= after + FAST
    # idle: on its own phase of the slow interval, never sooner than a quarter of it
    assert before + SLOW / 4 <= watcher._due_at[idle] <= after + SLOW * 1.25
    assert [name for name, _ in seen.calls] == ["in-busy"]


async def test_recheck_time_is_converted_from_emulated_to_real_seconds(
    emu: Emulator, client: AomClient
) -> None:
    """A recheck 60 emulated seconds away at speed 60 is one real second away, not 60."""
    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    emu.start_execution(wid)
    clock = EmulatorClock.of(emu)
    watcher = _watcher(client, emu, Seen(recheck=timedelta(seconds=60), clock=clock), speed=60.0)
    watcher.fast = 10.0
    await watcher.discover()
    loop = asyncio.get_running_loop()
    before = loop.time()
    await watcher.poll_all()
    after = loop.time()
    assert before + 1.0 <= watcher._due_at[wid] <= after + 1.0


async def test_one_failing_workflow_does_not_stop_the_others(
    emu: Emulator, client: AomClient
) -> None:
    bad = emu.add_workflow(name="in-bad", nodes=LONG_TASK)
    good = emu.add_workflow(name="in-good", nodes=LONG_TASK)
    emu.start_execution(bad)
    emu.start_execution(good)
    seen = Seen()
    watcher = _watcher(client, emu, seen)
    await watcher.discover()
    emu.inject(Fault(kind="server_error", path=f"/workflow/{bad}/executions$"))
    with capture_logs() as logs:
        await watcher.poll_all()
    assert [name for name, _ in seen.calls] == ["in-good"]
    assert watcher.stats.poll_errors == 1
    [failed] = [e for e in logs if e["event"] == "poll_failed"]
    assert failed["workflow_id"] == bad
    assert failed["request_id"]
    loop = asyncio.get_running_loop()
    assert watcher._due_at[bad] <= loop.time() + FAST  # looked at again soon


async def test_one_crashing_execution_does_not_stop_its_siblings(
    emu: Emulator, client: AomClient
) -> None:
    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    first, second = emu.start_execution(wid), emu.start_execution(wid)
    handled: list[str] = []

    async def handler(wf: Workflow, execution: Execution) -> datetime | None:
        if execution.execution_id == second:  # newest first: it comes first
            raise RuntimeError("bug in handling one execution")
        handled.append(execution.execution_id)
        return None

    watcher = _watcher(client, emu, handler)
    await watcher.discover()
    with capture_logs() as logs:
        await watcher.poll_all()
    assert handled == [first]
    assert [e["execution_id"] for e in logs if e["event"] == "poll_crashed"] == [second]


async def test_detail_call_only_when_the_brief_lacks_nodes(
    emu: Emulator, client: AomClient
) -> None:
    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    eid = emu.start_execution(wid)
    seen = Seen()
    watcher = _watcher(client, emu, seen)
    await watcher.discover()
    await watcher.poll_all()
    assert _gets(emu, f"/executions/{eid}/status") == 0  # the brief carried the node runs
    assert seen.calls[-1][1].nodes
    # the same execution as a brief without its node list: one detail call fills it in
    brief = {"workflow_id": wid, "execution_id": eid, "status": "executing", "begin_time": 1}
    emu.inject(
        Fault(kind="malformed", path=f"/{wid}/executions$", body=json.dumps([brief]), times=1)
    )
    await watcher.poll_all()
    assert _gets(emu, f"/executions/{eid}/status") == 1
    assert seen.calls[-1][1].nodes


async def test_retire_hook_hears_the_active_set(emu: Emulator, client: AomClient) -> None:
    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    eid = emu.start_execution(wid)
    heard: list[tuple[str, set[str]]] = []
    watcher = _watcher(client, emu, Seen(), retire=lambda w, ids: heard.append((w, set(ids))))
    await watcher.discover()
    await watcher.poll_all()
    await client.terminate(wid, eid)
    emu.advance(60)
    await watcher.poll_all()
    assert heard == [(wid, {eid}), (wid, set())]


async def test_run_loop_rediscovers_on_request_and_polls(emu: Emulator, client: AomClient) -> None:
    seen = Seen()
    watcher = _watcher(client, emu, seen)
    task = asyncio.create_task(watcher.run())
    try:
        await watcher.discovered.wait()
        assert watcher.workflows == {}
        wid = emu.add_workflow(name="in-new", nodes=LONG_TASK)
        emu.start_execution(wid)
        watcher.request_discovery()
        while not seen.calls:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen.calls[0][0] == "in-new"


async def test_an_unusable_journal_is_reported_once_not_per_execution(
    emu: Emulator, client: AomClient, tmp_path: Path
) -> None:
    from daemon.journal.sqlite import SqliteJournal

    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    for _ in range(3):
        emu.start_execution(wid)
    journal = SqliteJournal(tmp_path / "journal.sqlite3")
    await journal.open()
    await journal.close()  # from now on every call fails with JournalError

    async def handler(wf: Workflow, execution: Execution) -> datetime | None:
        await journal.facts(execution.execution_id)
        return None

    watcher = _watcher(client, emu, handler)
    await watcher.discover()
    with capture_logs() as logs:
        await watcher.poll_all()
        await watcher.poll_all()
    events = [e["event"] for e in logs]
    assert events.count("journal_unavailable") == 1
    assert "poll_crashed" not in events
    assert watcher.stats.poll_errors == 6


async def test_every_pass_of_the_loop_ticks_the_liveness_hook(
    emu: Emulator, client: AomClient
) -> None:
    emu.add_workflow(name="in-a", nodes=LONG_TASK)
    ticks: list[float] = []
    loop = asyncio.get_running_loop()
    watcher = _watcher(client, emu, Seen(), on_tick=lambda: ticks.append(loop.time()))
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(2.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # the loop sleeps at most 1 s between passes: several beats in 2.5 s, not one
    assert len(ticks) >= 2


async def test_executions_seen_counts_first_sightings_not_every_poll(
    emu: Emulator, client: AomClient
) -> None:
    """``aomd_executions_seen_total`` is fed from this count: polling the same executions
    again must not add to it (the soak saw 135,000 after 13 minutes of 2,000 workflows)."""
    wid = emu.add_workflow(name="in-a", nodes=LONG_TASK)
    other = emu.add_workflow(name="in-b", nodes=LONG_TASK)
    for _ in range(3):
        emu.start_execution(wid)
    w = _watcher(client, emu, Seen())
    await w.discover()
    for _ in range(4):
        await w.poll_all()
    assert w.stats.polls == 8
    assert w.stats.executions_seen == 3
    emu.start_execution(other)
    emu.start_execution(wid)
    await w.poll_all()
    await w.poll_all()
    assert w.stats.executions_seen == 5

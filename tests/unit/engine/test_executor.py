"""Executor against the real emulator, the real client and real journals.

The write under test is a real ``set_trigger`` call; the emulator's ledger is the
witness of what reached the cloud. Time is a ``FakeClock`` (test data, not a mock).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine import executor as executor_mod
from daemon.engine.executor import Executor
from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.journal import MemoryJournal, SqliteJournal
from daemon.kernel.model import Status
from daemon.kernel.outcomes import Resolution
from daemon.kernel.writes import WriteIntent
from tests.support.clocks import FakeClock
from tests.support.engine import DECISION_KEYS, Leader, make_executor


def _workflows(emu: Emulator, n: int) -> list[str]:
    return [
        emu.add_workflow(name=f"cron-{i}", type="cron", cron="0 3 * * *", trigger_enabled=True)
        for i in range(n)
    ]


def _intent(wid: str, key: str | None = None) -> WriteIntent:
    return WriteIntent(
        key=key or f"trigger/t/{wid}/trigger_disable/1",
        kind="trigger_disable",
        workflow_id=wid,
        rule="freeze",
        reason="calendar freeze active",
    )


def _disable(client: AomClient, wid: str):  # type: ignore[no-untyped-def]
    async def call() -> object:
        return await client.set_trigger(wid, False)

    async def read_back() -> Resolution:
        for wf in await client.list_workflows():
            if wf.id == wid:
                return "applied" if wf.trigger_enabled is False else "not_applied"
        return "moot"

    return call, read_back


def _sent(emu: Emulator) -> int:
    return len(emu.changes())


async def test_applied_once_then_duplicate_with_full_log_keys(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    [wid] = _workflows(emu, 1)
    ex = make_executor(journal, FakeClock())
    call, read_back = _disable(client, wid)
    with capture_logs() as logs:
        first = await ex.write(_intent(wid), call, read_back)
        again = await ex.write(_intent(wid), call, read_back)
    assert (first.outcome, again.outcome) == ("applied", "duplicate")
    assert first.request_id
    assert _sent(emu) == 1
    assert emu.workflow(wid).trigger_enabled is False
    [sent] = [e for e in logs if e["event"] == "action_sent"]
    assert sent.keys() >= DECISION_KEYS
    assert sent["request_id"] == first.request_id


async def test_dry_run_writes_nothing_and_journals_dry_run(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    [wid] = _workflows(emu, 1)
    ex = make_executor(journal, FakeClock(), dry_run=True)
    call, read_back = _disable(client, wid)
    with capture_logs() as logs:
        report = await ex.write(_intent(wid), call, read_back)
    assert report.outcome == "dry_run"
    assert _sent(emu) == 0
    assert emu.workflow(wid).trigger_enabled is True
    [row] = await journal.history()
    assert row.outcome == "dry_run"
    [decided] = [e for e in logs if e["event"] == "action_decided"]
    assert decided["dry_run"] is True
    assert decided.keys() >= DECISION_KEYS


async def test_blast_radius_trips_stops_writes_and_resumes_after_window(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    wids = _workflows(emu, 4)
    clock = FakeClock()
    ex = make_executor(journal, clock, per_minute=2)
    with capture_logs() as logs:
        reports = []
        for wid in wids[:3]:
            call, read_back = _disable(client, wid)
            reports.append(await ex.write(_intent(wid), call, read_back))
            clock.advance(1)
        assert [r.outcome for r in reports] == ["applied", "applied", "refused"]
        assert ex.blast_tripped
        # refused again: logged once, still nothing sent
        call, read_back = _disable(client, wids[2])
        assert (await ex.write(_intent(wids[2]), call, read_back)).outcome == "refused"
        assert _sent(emu) == 2
        clock.advance(60)
        assert (await ex.write(_intent(wids[2]), call, read_back)).outcome == "applied"
    assert not ex.blast_tripped
    events = [e["event"] for e in logs]
    assert events.count("blast_radius_tripped") == 1
    assert events.count("blast_radius_cleared") == 1
    assert events.count("action_refused") == 1
    refused = next(e for e in logs if e["event"] == "action_refused")
    assert refused.keys() >= DECISION_KEYS
    assert _sent(emu) == 3


async def test_per_workflow_cap_does_not_flap_the_global_state(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    a, b = _workflows(emu, 2)
    ex = make_executor(journal, FakeClock(), per_workflow=1)
    call_a, rb_a = _disable(client, a)
    assert (await ex.write(_intent(a, "k/a/1"), call_a, rb_a)).outcome == "applied"
    with capture_logs() as logs:
        assert (await ex.write(_intent(a, "k/a/2"), call_a, rb_a)).outcome == "refused"
        call_b, rb_b = _disable(client, b)
        assert (await ex.write(_intent(b, "k/b/1"), call_b, rb_b)).outcome == "applied"
        assert (await ex.write(_intent(a, "k/a/3"), call_a, rb_a)).outcome == "refused"
    # workflow a stays capped while b writes: tripped once, never "cleared" in between
    events = [e["event"] for e in logs]
    assert events.count("blast_radius_tripped") == 1
    assert "blast_radius_cleared" not in events
    assert ex.blast_tripped


async def test_concurrent_writers_cannot_overshoot_the_cap(
    emu: Emulator, client: AomClient, tmp_path: Path
) -> None:
    """The cap is checked and taken before the journal await (SQLite runs in a thread)."""
    wids = _workflows(emu, 6)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    await journal.open()
    try:
        ex = Executor(
            journal=journal,
            clock=FakeClock(),
            blast=BlastRadius(per_minute=2, per_workflow_per_minute=10),
            breaker=CircuitBreaker(error_ratio=1.0, min_calls=1000, cooldown=60.0),
            leader=Leader(),
            dry_run=False,
        )
        reports = await asyncio.gather(*(ex.write(_intent(w), *_disable(client, w)) for w in wids))
    finally:
        await journal.close()
    outcomes = sorted(r.outcome for r in reports)
    assert outcomes == ["applied"] * 2 + ["refused"] * 4
    assert _sent(emu) == 2


async def test_a_duplicate_gives_its_blast_slot_back(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    a, b = _workflows(emu, 2)
    ex = make_executor(journal, FakeClock(), per_minute=2)
    call, rb = _disable(client, a)
    assert (await ex.write(_intent(a), call, rb)).outcome == "applied"
    for _ in range(3):
        assert (await ex.write(_intent(a), call, rb)).outcome == "duplicate"
    call, rb = _disable(client, b)
    assert (await ex.write(_intent(b), call, rb)).outcome == "applied"


async def test_breaker_opens_on_error_spike_then_one_trial_closes_it(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    wids = _workflows(emu, 5)
    clock = FakeClock()
    breaker = CircuitBreaker(error_ratio=0.5, min_calls=2, cooldown=30.0)
    ex = make_executor(journal, clock, breaker=breaker)
    emu.inject(Fault(kind="server_error", path="/trigger/", times=2))
    for wid in wids[:2]:
        assert (await ex.write(_intent(wid), *_disable(client, wid))).outcome == "failed"
    assert breaker.is_open(clock.monotonic())
    requests = len(emu.ledger)
    report = await ex.write(_intent(wids[2]), *_disable(client, wids[2]))
    assert report.outcome == "refused"
    assert report.error is not None
    assert "circuit breaker" in report.error
    assert len(emu.ledger) == requests  # refused before anything was sent
    clock.advance(31)
    # half-open: exactly one trial goes out even when writers race
    reports = await asyncio.gather(
        ex.write(_intent(wids[2]), *_disable(client, wids[2])),
        ex.write(_intent(wids[3]), *_disable(client, wids[3])),
    )
    assert sorted(r.outcome for r in reports) == ["applied", "refused"]
    assert not breaker.is_open(clock.monotonic())
    assert (await ex.write(_intent(wids[4]), *_disable(client, wids[4]))).outcome == "applied"
    # the failed keys are sent again once the breaker closed
    assert (await ex.write(_intent(wids[0]), *_disable(client, wids[0]))).outcome == "applied"


def _terminate(emu: Emulator, client: AomClient) -> tuple[WriteIntent, Any, Any]:
    """A POST write (aiohttp never resends those): terminate a long-running execution."""
    wid = emu.add_workflow(
        name="batch", nodes=[{"id": "n", "name": "n", "kind": "task", "duration": 3600}]
    )
    eid = emu.start_execution(wid)
    intent = WriteIntent(
        key=f"exec/{eid}/-/terminate/1",
        kind="terminate",
        workflow_id=wid,
        execution_id=eid,
        rule="overlong",
        reason="past deadline",
    )

    async def call() -> object:
        return await client.terminate(wid, eid)

    async def read_back() -> Resolution:
        after = await client.get_execution(wid, eid)
        return "applied" if after.status in (Status.CANCEL, Status.CANCELING) else "not_applied"

    return intent, call, read_back


async def test_lost_reply_is_resolved_by_reading_never_resent(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    intent, call, read_back = _terminate(emu, client)
    ex = make_executor(journal, FakeClock())
    emu.inject(Fault(kind="applied_then_lost", path="/terminate", times=1))
    with capture_logs() as logs:
        report = await ex.write(intent, call, read_back)
    assert report.outcome == "resolved_applied"
    assert (await ex.write(intent, call, read_back)).outcome == "duplicate"
    assert len(emu.changes()) == 1
    [row] = await journal.history()
    assert row.outcome == "resolved_applied"
    assert [e["outcome"] for e in logs if e["event"] in ("action_sent", "outcome_resolved")] == [
        "unknown",
        "resolved_applied",
    ]


async def test_lost_reply_not_applied_is_sent_again_on_the_next_pass(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    """``reset`` drops the connection before the write is applied: the read proves it."""
    intent, call, read_back = _terminate(emu, client)
    ex = make_executor(journal, FakeClock())
    emu.inject(Fault(kind="reset", path="/terminate", times=1))
    first = await ex.write(intent, call, read_back)
    assert first.outcome in ("failed", "resolved_not_applied")
    assert len(emu.changes()) == 0
    assert (await ex.write(intent, call, read_back)).outcome == "applied"
    assert len(emu.changes()) == 1


async def test_stopping_and_not_leader_refuse_new_writes(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    a, b = _workflows(emu, 2)
    ex = make_executor(journal, FakeClock())
    ex.stopping = True
    report = await ex.write(_intent(a), *_disable(client, a))
    assert (report.outcome, report.error) == ("refused", "shutting down")
    ex.stopping = False
    ex.leader = Leader(False)
    report = await ex.write(_intent(b), *_disable(client, b))
    assert (report.outcome, report.error) == ("refused", "not the leader")
    assert _sent(emu) == 0
    assert await journal.history() == []  # refused writes leave no intent behind


async def test_refusal_memory_is_bounded(
    journal: MemoryJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_mod, "REFUSAL_MEMORY", 16)
    ex = make_executor(journal, FakeClock())
    ex.stopping = True

    async def never() -> object:
        raise AssertionError("refused writes are never sent")

    for i in range(100):
        await ex.write(_intent("wf", f"k/{i}"), never)
    assert len(ex._refusal_logged) == 16


async def test_same_key_written_concurrently_is_sent_once_and_never_misread(
    emu: Emulator, client: AomClient, tmp_path: Path
) -> None:
    """The second writer must not read state while the first call is in flight: it would
    see "not applied", journal that, and invite a resend."""
    intent, call, read_back = _terminate(emu, client)

    async def slow_call() -> object:
        await asyncio.sleep(0.02)  # the second writer arrives while this one is out
        return await call()

    journal = SqliteJournal(tmp_path / "journal.sqlite")
    await journal.open()
    try:
        ex = make_executor(journal, FakeClock())
        reports = await asyncio.gather(
            ex.write(intent, slow_call, read_back), ex.write(intent, slow_call, read_back)
        )
        [row] = await journal.history()
    finally:
        await journal.close()
    assert sorted(r.outcome for r in reports) == ["applied", "duplicate"]
    assert row.outcome == "applied"
    assert len(emu.changes()) == 1


async def test_a_write_counts_as_in_flight_until_its_outcome_is_journaled(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    """The shutdown drain waits on ``in_flight``; the outcome write is part of the write."""
    [wid] = _workflows(emu, 1)
    ex = make_executor(journal, FakeClock())
    during: list[int] = []
    ex.on_outcome = lambda intent, report: during.append(ex.in_flight)
    assert (await ex.write(_intent(wid), *_disable(client, wid))).outcome == "applied"
    assert during == [1]
    assert ex.in_flight == 0


async def test_trip_state_clears_when_the_window_passes_without_new_writes(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> None:
    [wid] = _workflows(emu, 1)
    clock = FakeClock()
    ex = make_executor(journal, clock, per_workflow=1)
    call, rb = _disable(client, wid)
    assert (await ex.write(_intent(wid, "k/1"), call, rb)).outcome == "applied"
    assert (await ex.write(_intent(wid, "k/2"), call, rb)).outcome == "refused"
    assert ex.blast_tripped
    clock.advance(61)  # nobody writes to that workflow again
    assert not ex.blast_tripped

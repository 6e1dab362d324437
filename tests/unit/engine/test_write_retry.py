"""A write that failed without effect (5xx, 429) is sent again seconds later, under the
same key, for every kind of write: node operations, trigger changes, scheduled runs.

Against the emulator with the real client, journal and executor; emulated time stands
still (speed 0) and moves only by ``emu.advance``, so each retry instant is exact. The
ledger is the witness of what reached the cloud and when.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine.notify import Notifier
from daemon.engine.schedule_runner import ScheduleRunner
from daemon.engine.trigger_reconciler import STUCK_RECHECK, TriggerReconciler
from daemon.engine.write_retry import RetryBook, WriteRetryPolicy
from daemon.journal import MemoryJournal
from daemon.policy import PolicySet, load_policy_dir
from tests.support.clocks import EmulatorClock
from tests.support.engine import Rig, make_executor
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

POLICY = """
calendars:
  freeze:
    ranges:
      - {start: "2026-11-26T09:00:00Z", end: "2026-11-26T11:00:00Z"}
rules:
  - name: approve
    match: {workflow: {name: "release-*"}, node: {name: approve}, status: paused}
    action: continue
triggers:
  - name: freeze-all
    select: {names: ["nightly-*"]}
    off_during: freeze
schedules:
  - name: report
    cron: "0 10 * * *"
    timezone: UTC
    action: {execute: {workflow_name: report}}
    misfire_grace_seconds: 300
"""
# T0 = 2026-11-26 10:00Z: inside the freeze, at the schedule's fire time.

FAULTS = {
    "5xx": lambda path: Fault(kind="server_error", path=path, method="POST", times=1),
    "429": lambda path: Fault(kind="throttle", path=path, method="POST", times=1, retry_after=3),
}
"""One failed answer each; a 429 asks for 3 s (Retry-After), longer than our own wait."""


def _window(kind: str) -> tuple[float, float]:
    """Seconds after the failure within which the retry must go out: the default policy's
    first wait is 1 s minus up to 50 % jitter; a 429 waits its Retry-After exactly."""
    return (0.5, 1.003) if kind == "5xx" else (3.0, 3.003)


def _advance_to(emu: Emulator, when: datetime) -> None:
    """Just past ``when`` (the emulated clock counts whole milliseconds)."""
    emu.advance((when - emu.now()).total_seconds() + 0.002)


def _writes(emu: Emulator, part: str) -> list[tuple[datetime, int | None]]:
    return [(e.time, e.status) for e in emu.ledger if e.method != "GET" and part in e.path]


def _policy(tmp_path: Path) -> PolicySet:
    return load_policy_dir(write_rules(tmp_path, POLICY))


@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_node_operation_is_retried_within_seconds_same_key(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, kind: str
) -> None:
    wid = emu.add_workflow(
        name="release-web", nodes=[{"id": "approve", "name": "approve", "kind": "pause"}]
    )
    eid = emu.start_execution(wid)
    emu.inject(FAULTS[kind]("/operation"))
    rig = Rig(emu, client, journal, write_rules(tmp_path, POLICY))
    [wf] = [w for w in await client.list_workflows() if w.id == wid]
    recheck = await rig.handler(wf, await client.get_execution(wid, eid))
    [(failed_at, status)] = _writes(emu, "/operation")
    assert status == (500 if kind == "5xx" else 429)
    # the watcher is told to look again when the retry is due: seconds, not backoff 30 s
    assert recheck is not None
    low, high = _window(kind)
    assert low <= (recheck - failed_at).total_seconds() <= high
    # before that instant a pass sends nothing (backoff, not a hot loop)
    await rig.handler(wf, await client.get_execution(wid, eid))
    assert len(_writes(emu, "/operation")) == 1
    _advance_to(emu, recheck)
    await rig.handler(wf, await client.get_execution(wid, eid))
    first, second = _writes(emu, "/operation")
    assert second[1] == 200
    assert low <= (second[0] - first[0]).total_seconds() <= high
    [row] = await journal.history()  # the same key, sent again: one row, applied
    assert (row.kind, row.attempt, row.outcome) == ("continue", 1, "applied")
    assert rig.executor.retries.due(row.key) is None  # settled, forgotten


@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_trigger_change_is_retried_within_seconds_same_key(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, kind: str
) -> None:
    wid = emu.add_workflow(name="nightly-a", type="cron", cron="0 3 * * *", trigger_enabled=True)
    emu.inject(dataclasses.replace(FAULTS[kind]("/trigger/action"), method="PUT"))
    clock = EmulatorClock.of(emu)
    rec = TriggerReconciler(
        client=client, ownership=journal, executor=make_executor(journal, clock), account="t"
    )
    policy = _policy(tmp_path)
    with capture_logs() as logs:
        await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    [(failed_at, _)] = _writes(emu, "/trigger/action")
    assert emu.workflow(wid).trigger_enabled is True
    # reported while the trigger is not as the calendar wants, and retried promptly
    assert rec.unreconciled.keys() == {wid}
    [stuck] = [e for e in logs if e["event"] == "trigger_unreconciled"]
    assert (stuck["workflow_id"], stuck["action"], stuck["outcome"]) == (
        wid,
        "trigger_disable",
        "failed",
    )
    again = rec.next_pass(clock.now())
    assert again is not None
    low, high = _window(kind)
    assert low <= (again - failed_at).total_seconds() <= high
    _advance_to(emu, again)
    with capture_logs() as logs:
        await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert emu.workflow(wid).trigger_enabled is False
    _, (sent_at, status) = _writes(emu, "/trigger/action")
    assert status == 200
    assert low <= (sent_at - failed_at).total_seconds() <= high
    [row] = await journal.history()  # the failed key was sent again, not a new one
    assert (row.kind, row.outcome) == ("trigger_disable", "applied")
    # in its desired state: no longer reported, no extra wake-up
    await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert rec.unreconciled == {}
    assert rec.next_pass(clock.now()) is None
    assert await journal.owned_triggers() == {wid}


@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_scheduled_run_is_retried_within_seconds_same_key(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, kind: str
) -> None:
    wid = emu.add_workflow(
        name="report", nodes=[{"id": "n", "name": "n", "kind": "task", "duration": 5}]
    )
    emu.inject(FAULTS[kind](f"/workflow/{wid}/executions$"))
    clock = EmulatorClock.of(emu)
    runner = ScheduleRunner(
        client=client, journal=journal, executor=make_executor(journal, clock), account="t"
    )
    policy = _policy(tmp_path)

    async def tick() -> list[str]:
        done = await runner.tick(
            policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
        )
        return [r.outcome for r in done]

    assert await tick() == ["failed"]
    [(failed_at, _)] = _writes(emu, "/executions")
    assert runner.retry_at is not None
    low, high = _window(kind)
    assert low <= (runner.retry_at - failed_at).total_seconds() <= high
    _advance_to(emu, runner.retry_at)
    assert await tick() == ["applied"]
    assert runner.retry_at is None
    _, (sent_at, status) = _writes(emu, "/executions")
    assert status == 200
    assert low <= (sent_at - failed_at).total_seconds() <= high
    assert len(await client.list_executions(wid)) == 1
    [row] = await journal.history()
    assert (row.kind, row.outcome) == ("execute", "applied")


async def test_trigger_that_keeps_failing_is_reported_until_it_is_reconciled(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    """Prompt retries are bounded (5, backing off 1, 2, 4, 8, 16 s before jitter); then a
    person is notified once and the trigger is tried every minute until it takes."""
    wid = emu.add_workflow(name="nightly-a", type="cron", cron="0 3 * * *", trigger_enabled=True)
    emu.inject(Fault(kind="server_error", path="/trigger/action", status=503))
    clock = EmulatorClock.of(emu)
    notifier = Notifier(webhook.url)
    rec = TriggerReconciler(
        client=client,
        ownership=journal,
        executor=make_executor(journal, clock),
        account="t",
        notifier=notifier,
    )
    policy = _policy(tmp_path)
    waits: list[float] = []
    start = clock.now()
    for _ in range(6):
        await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
        again = rec.next_pass(clock.now())
        assert again is not None
        waits.append((again - clock.now()).total_seconds())
        _advance_to(emu, again)
    # doubling with jitter, then the slow lane: a minute, not reconcile_interval
    for i, wait in enumerate(waits[:5]):
        assert 2**i * 0.5 - 0.003 <= wait <= 2**i
    assert waits[5] == STUCK_RECHECK.total_seconds()
    assert len(_writes(emu, "/trigger/action")) == 6
    assert (clock.now() - start).total_seconds() <= 31 + 60
    assert await notifier.flush() == 1
    [body] = webhook.received
    assert (body["kind"], body["workflow_id"], body["tries"]) == ("trigger_unreconciled", wid, 6)
    stuck = rec.unreconciled[wid]
    assert (stuck.outcome, stuck.since) == ("failed", start)
    # still reported on every pass, notified once only
    await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert rec.unreconciled[wid].tries == 7
    assert await notifier.flush() == 0
    emu.clear_faults()
    emu.advance(STUCK_RECHECK.total_seconds())
    with capture_logs() as logs:
        await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert emu.workflow(wid).trigger_enabled is False
    assert rec.unreconciled == {}
    [done] = [e for e in logs if e["event"] == "trigger_reconciled"]
    assert done["tries"] == 7


def test_retry_book_backs_off_with_jitter_honours_retry_after_and_is_bounded() -> None:
    t = datetime(2026, 11, 26, 10, tzinfo=None)
    book = RetryBook(WriteRetryPolicy(retries=3, initial=1.0, cap=3.0), rand=lambda: 1.0)
    waits = []
    for _ in range(3):
        due = book.failed("k", t, None)
        assert due is not None
        waits.append((due - t).total_seconds())
    assert waits == [0.5, 1.0, 1.5]  # 1, 2, 4->3 capped, minus the full 50 % jitter
    assert book.failed("k", t, None) is None  # budget spent: the slow lane
    assert book.exhausted == 1
    book.settled("k")
    assert book.failures("k") == 0
    # Retry-After wins when it asks for longer
    due = book.failed("k", t, 7.0)
    assert due == t + timedelta(seconds=7)
    # a bounded memory: old keys are forgotten
    for i in range(5000):
        book.failed(f"x{i}", t, None)
    assert len(book) <= 4096


async def test_a_change_that_fails_early_in_a_long_pass_is_retried_within_it(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """A pass over hundreds of triggers takes tens of seconds; the failed one must not
    wait for its end. Here emulated time moves a little with every clock read, as it
    does while a real pass writes."""
    wids = [
        emu.add_workflow(name=f"nightly-{i}", type="cron", cron="0 3 * * *", trigger_enabled=True)
        for i in range(8)
    ]
    emu.inject(Fault(kind="server_error", path="/trigger/action", method="PUT", times=1))

    def moving_now() -> datetime:
        emu.advance(0.1)
        return emu.now()

    clock = EmulatorClock(moving_now, lambda: 1000.0)
    rec = TriggerReconciler(
        client=client, ownership=journal, executor=make_executor(journal, clock), account="t"
    )
    policy = _policy(tmp_path)
    await rec.reconcile(policy.triggers, policy.built_calendars, emu.now())
    puts = [e for e in emu.ledger if e.method == "PUT"]
    assert len(puts) == len(wids) + 1
    assert puts[0].status == 500
    # the failed one went out again before the pass ended, and nothing is left over
    resent = next(i for i, e in enumerate(puts) if i and puts[0].path == e.path)
    assert resent < len(puts) - 1
    assert all(emu.workflow(w).trigger_enabled is False for w in wids)
    assert rec.unreconciled == {}
    assert rec.next_pass(emu.now()) is None

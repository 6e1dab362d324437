"""ScheduleRunner against the emulator: each fire time runs once, across passes and
restarts; blocked fire times are journaled as skipped; a lost reply is resolved by reading."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine.notify import Notifier
from daemon.engine.schedule_runner import ScheduleRunner
from daemon.journal import MemoryJournal
from daemon.policy import PolicySet, load_policy_dir
from tests.support.clocks import T0, EmulatorClock
from tests.support.engine import DECISION_KEYS, make_executor
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

POLICY = """
calendars:
  freeze:
    ranges:
      - {start: "2026-11-26T10:15:00Z", end: "2026-11-26T10:25:00Z"}
schedules:
  - name: every-10
    cron: "*/10 * * * *"
    timezone: UTC
    action: {execute: {workflow_name: report}}
    blocked_by: [freeze]
    misfire_grace_seconds: 120
"""


def _runner(
    emu: Emulator, client: AomClient, journal: MemoryJournal
) -> tuple[ScheduleRunner, EmulatorClock]:
    clock = EmulatorClock.of(emu)
    runner = ScheduleRunner(
        client=client, journal=journal, executor=make_executor(journal, clock), account="t"
    )
    return runner, clock


async def _tick(runner: ScheduleRunner, policy: PolicySet, clock: EmulatorClock) -> list[str]:
    results = await runner.tick(
        policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
    )
    return [f"{r.fire_time:%H:%M} {r.outcome}" for r in results if r.fire_time >= T0]


def _report(emu: Emulator) -> str:
    return emu.add_workflow(
        name="report", nodes=[{"id": "n", "name": "n", "kind": "task", "duration": 5}]
    )


async def test_each_fire_time_runs_once_across_passes_and_restarts(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    assert await _tick(runner, policy, clock) == ["10:00 applied"]
    emu.advance(1)
    assert await _tick(runner, policy, clock) == []
    restarted, _ = _runner(emu, client, journal)  # a new process, same journal
    assert await _tick(restarted, policy, clock) == []
    assert len(await client.list_executions(wid)) == 1
    # the next fire time is known and runs in turn
    nxt = runner.next_fire(
        policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
    )
    assert nxt == clock.now().replace(minute=10, second=0)
    emu.advance(600)
    assert await _tick(runner, policy, clock) == ["10:10 applied"]
    assert len(await client.list_executions(wid)) == 2


async def test_blocked_fire_time_is_skipped_and_journaled(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    await _tick(runner, policy, clock)
    emu.advance(20 * 60)  # 10:20, inside the freeze
    assert await _tick(runner, policy, clock) == ["10:10 missed", "10:20 skipped"]
    assert len(await client.list_executions(wid)) == 1
    rows = {
        r.key.rsplit("/", 1)[-1][11:16]: r.outcome
        for r in await journal.history()
        if r.key.endswith("+00:00") and r.key.rsplit("/", 1)[-1] >= T0.isoformat()
    }
    assert (rows["10:10"], rows["10:20"]) == ("missed", "skipped")


async def test_lost_reply_is_resolved_by_listing_executions_not_resent(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    emu.inject(Fault(kind="applied_then_lost", path=f"/{wid}/executions$", method="POST"))
    assert await _tick(runner, policy, clock) == ["10:00 resolved_applied"]
    assert len(await client.list_executions(wid)) == 1
    emu.clear_faults()
    emu.advance(timedelta(seconds=30).total_seconds())
    assert await _tick(runner, policy, clock) == []
    assert len(await client.list_executions(wid)) == 1


async def test_a_refused_fire_time_that_ages_out_is_journaled_as_missed(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """Refused while shutting down (or by a guard): not run, and not silently lost."""
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    runner.executor.stopping = True
    assert await _tick(runner, policy, clock) == ["10:00 refused"]
    emu.advance(60)  # still within the 120 s grace: tried again, refused again
    assert await _tick(runner, policy, clock) == ["10:00 refused"]
    runner.executor.stopping = False
    emu.advance(120)  # past the grace
    with capture_logs() as logs:
        assert await _tick(runner, policy, clock) == ["10:00 missed"]
    assert await client.list_executions(wid) == []
    [missed] = [e for e in logs if e["event"] == "scheduled_run_missed"]
    assert missed.keys() >= DECISION_KEYS


async def test_fresh_journal_reports_nothing_before_aomd_ever_ran(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    results = await runner.tick(
        policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
    )
    # Only the fire time within the misfire grace runs; the day before is not "missed".
    assert [(r.fire_time, r.outcome) for r in results] == [(T0, "applied")]
    assert [r.outcome for r in await journal.history()] == ["applied"]


async def test_fire_times_missed_while_stopped_are_journaled_after_a_restart(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY.replace("blocked_by: [freeze]", "")))
    runner, clock = _runner(emu, client, journal)
    await _tick(runner, policy, clock)  # 10:00 runs
    emu.advance(45 * 60)  # aomd is down from just after 10:00 until 10:45
    restarted, _ = _runner(emu, client, journal)
    assert await _tick(restarted, policy, clock) == [
        "10:10 missed",
        "10:20 missed",
        "10:30 missed",
        "10:40 missed",
    ]
    assert len(await client.list_executions(wid)) == 1


async def test_a_forward_clock_jump_looks_back_one_day_like_a_restart(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """A wall clock that jumps far ahead (a VM resumed after weeks, an RTC corrected by
    NTP) must not make the next tick journal every fire time since the last one: the
    in-memory last tick is bounded by the same one-day look-back as the journaled one
    (for a per-minute schedule and a jump of years that was millions of rows, one
    transaction each, with the reconcile loop stuck on them)."""
    _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY.replace("blocked_by: [freeze]", "")))
    runner, clock = _runner(emu, client, journal)
    await _tick(runner, policy, clock)
    emu.advance(30 * 86400)
    results = await runner.tick(
        policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
    )
    missed = [r for r in results if r.outcome == "missed"]
    assert 0 < len(missed) <= 24 * 6
    assert min(r.fire_time for r in missed) >= clock.now() - timedelta(days=1, minutes=2)


async def test_lost_reply_with_the_cloud_clock_behind_is_not_resent(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """The execution's ``begin_time`` is the cloud's clock, the fire time aomd's: with
    the cloud 10 s behind, the execution a lost reply started "began" before the fire
    time, so the read-back said not applied and the next tick ran the workflow again."""
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY.replace("blocked_by: [freeze]", "")))
    runner, clock = _runner(emu, client, journal)
    emu.advance(600 - 10)  # cloud: 10:09:50; aomd: 10:10:00
    ahead = clock.now() + timedelta(seconds=10)
    emu.inject(Fault(kind="applied_then_lost", path=f"/{wid}/executions$", method="POST"))
    sources = policy.schedule_sources
    results = await runner.tick(policy.schedules, policy.built_calendars, sources, ahead)
    assert [(f"{r.fire_time:%H:%M}", r.outcome) for r in results] == [("10:10", "resolved_applied")]
    emu.clear_faults()
    emu.advance(30)
    later = ahead + timedelta(seconds=30)
    assert await runner.tick(policy.schedules, policy.built_calendars, sources, later) == []
    assert len(await client.list_executions(wid)) == 1


async def test_unreadable_2xx_reply_to_execute_is_resolved_by_reading_not_rejected(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """A 2xx whose body cannot be read says nothing about the write: it was journaled
    ``rejected`` (never looked at again), so a run that did not start was lost and one
    that did was recorded as refused. Now it is resolved by listing executions."""
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    runner, clock = _runner(emu, client, journal)
    emu.inject(
        Fault(kind="malformed", path=f"/{wid}/executions$", method="POST", body="{}", times=1)
    )
    # No new execution yet: not proof of "not applied" until the list had time to
    # settle (issue #16: concluding too early could start a backup twice).
    assert await _tick(runner, policy, clock) == ["10:00 unknown"]
    emu.advance(30)
    assert await _tick(runner, policy, clock) == ["10:00 resolved_not_applied"]
    emu.advance(30)
    assert await _tick(runner, policy, clock) == ["10:00 applied"]
    assert len(await client.list_executions(wid)) == 1


CATCH_UP = """
calendars:
  freeze:
    ranges:
      - {start: "2026-11-26T10:15:00Z", end: "2026-11-26T10:45:00Z"}
schedules:
  - name: every-10
    cron: "*/10 * * * *"
    timezone: UTC
    action: {execute: {workflow_name: report}}
    blocked_by: [freeze]
    misfire_grace_seconds: 120
    catch_up: MODE
    catch_up_window: 1h
"""


async def _walk(
    runner: ScheduleRunner, policy: PolicySet, clock: EmulatorClock, emu: Emulator, *mins: int
) -> list[str]:
    """Tick at each of these minutes past 10:00."""
    out: list[str] = []
    for m in mins:
        emu.advance((T0 + timedelta(minutes=m) - clock.now()).total_seconds())
        results = await runner.tick(
            policy.schedules, policy.built_calendars, policy.schedule_sources, clock.now()
        )
        out += [
            f"{r.fire_time:%H:%M} {'catch-up ' if r.catch_up else ''}{r.outcome}"
            for r in results
            if r.fire_time >= T0
        ]
    return out


async def test_catch_up_once_runs_the_latest_blocked_fire_once_across_a_restart(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, CATCH_UP.replace("MODE", "once")))
    runner, clock = _runner(emu, client, journal)
    assert policy.schedules[0].catch_up == "once"
    # The waker wakes at the freeze end (10:45:01), not only at fire times.
    nxt = runner.next_fire(
        policy.schedules, policy.built_calendars, policy.schedule_sources, T0.replace(minute=41)
    )
    assert nxt == T0.replace(minute=45, second=1)
    with capture_logs() as logs:
        assert await _walk(runner, policy, clock, emu, 0, 10, 20, 30, 40, 45) == [
            "10:00 applied",
            "10:10 applied",
            "10:20 skipped",
            "10:30 skipped",
            "10:40 skipped",
            "10:40 catch-up applied",
        ]
    assert [e["reason"] for e in logs if e["event"] == "scheduled_catch_up"] == [
        "catch-up of 2026-11-26T10:40:00+00:00 (blocked by calendar freeze; catch_up: once)"
    ]
    restarted, _ = _runner(emu, client, journal)  # killed at the freeze end, started again
    assert await _walk(restarted, policy, clock, emu, 46, 47) == []
    assert await _walk(restarted, policy, clock, emu, 50) == ["10:50 applied"]
    assert len(await client.list_executions(wid)) == 4
    keys = [r.key for r in await journal.history() if r.key.startswith("catchup/")]
    assert keys == ["catchup/t/every-10/2026-11-26T10:40:00+00:00"]


async def test_catch_up_all_runs_each_blocked_fire_once_after_being_down_across_the_end(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, CATCH_UP.replace("MODE", "all")))
    runner, clock = _runner(emu, client, journal)
    assert await _walk(runner, policy, clock, emu, 0, 10, 20) == [
        "10:00 applied",
        "10:10 applied",
        "10:20 skipped",
    ]
    restarted, _ = _runner(emu, client, journal)  # down from 10:20 until 10:47
    assert await _walk(restarted, policy, clock, emu, 47) == [
        "10:30 missed",
        "10:40 missed",
        "10:20 catch-up applied",
        "10:30 catch-up applied",
        "10:40 catch-up applied",
    ]
    again, _ = _runner(emu, client, journal)
    assert await _walk(again, policy, clock, emu, 48) == []
    assert len(await client.list_executions(wid)) == 5


async def test_catch_up_ignores_blocked_fires_older_than_the_window(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    _report(emu)
    text = CATCH_UP.replace("MODE", "all").replace("catch_up_window: 1h", "catch_up_window: 10m")
    policy = load_policy_dir(write_rules(tmp_path, text))
    runner, clock = _runner(emu, client, journal)
    await _walk(runner, policy, clock, emu, 0, 10, 20, 30, 40)
    assert await _walk(runner, policy, clock, emu, 45) == ["10:40 catch-up applied"]


OVERLAP = """
schedules:
  - name: every-10
    cron: "*/10 * * * *"
    timezone: UTC
    action: {execute: {workflow_name: slow}}
    overlap: MODE
"""


async def test_overlap_skip_and_terminate_previous(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="slow", nodes=[{"id": "n", "name": "n", "kind": "task", "duration": 3600}]
    )
    policy = load_policy_dir(write_rules(tmp_path, OVERLAP.replace("MODE", "skip")))
    runner, clock = _runner(emu, client, journal)
    assert await _walk(runner, policy, clock, emu, 0, 10) == ["10:00 applied", "10:10 skipped"]
    assert len(await client.list_executions(wid)) == 1
    [row] = [r for r in await journal.history() if r.outcome == "skipped"]
    assert "still runs (overlap: skip)" in row.reason
    again, _ = _runner(emu, client, journal)
    assert await _walk(again, policy, clock, emu, 11) == []  # journaled: not re-decided

    policy = load_policy_dir(write_rules(tmp_path, OVERLAP.replace("MODE", "terminate_previous")))
    assert await _walk(runner, policy, clock, emu, 20) == ["10:20 applied"]
    runs = await client.list_executions(wid)
    assert len(runs) == 2
    assert sorted(e.status.value for e in runs)[0] != sorted(e.status.value for e in runs)[1]
    [term] = [r for r in await journal.history() if r.key.startswith("overlap/")]
    assert term.outcome == "applied"
    assert term.kind == "terminate"


async def test_skipped_missed_and_catch_up_runs_are_notified_once_with_a_schema_version(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    _report(emu)
    policy = load_policy_dir(write_rules(tmp_path, CATCH_UP.replace("MODE", "once")))
    notifier = Notifier(webhook.url)
    clock = EmulatorClock.of(emu)
    runner = ScheduleRunner(
        client=client,
        journal=journal,
        executor=make_executor(journal, clock),
        account="t",
        notifier=notifier,
    )
    await _walk(runner, policy, clock, emu, 0, 20, 45)
    again = ScheduleRunner(
        client=client, journal=journal, executor=make_executor(journal, clock), account="t",
        notifier=notifier,
    )  # fmt: skip
    await _walk(again, policy, clock, emu, 46)  # a restart tells nothing twice
    await notifier.flush()
    kinds = [(b["kind"], b["fire_time"][11:16]) for b in webhook.received]
    assert kinds == [
        ("scheduled_run_missed", "10:10"),
        ("scheduled_run_skipped", "10:20"),
        ("scheduled_run_missed", "10:30"),
        ("scheduled_run_missed", "10:40"),
        ("scheduled_catch_up", "10:40"),
    ]
    assert {b["schema_version"] for b in webhook.received} == {1}
    assert webhook.received[-1]["outcome"] == "applied"
    assert webhook.received[-1]["key"] == "catchup/t/every-10/2026-11-26T10:40:00+00:00"


async def test_catch_up_once_stands_in_for_older_blocked_fires(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """Two freezes with no regular fire time between them: each end catches up once, the
    second only what was blocked after the first catch-up (as ``aomd plan`` shows)."""
    _report(emu)
    text = CATCH_UP.replace("MODE", "once").replace(
        '- {start: "2026-11-26T10:15:00Z", end: "2026-11-26T10:45:00Z"}',
        '- {start: "2026-11-26T10:15:00Z", end: "2026-11-26T10:22:00Z"}\n'
        '      - {start: "2026-11-26T10:26:00Z", end: "2026-11-26T10:45:00Z"}',
    )
    policy = load_policy_dir(write_rules(tmp_path, text))
    runner, clock = _runner(emu, client, journal)
    assert await _walk(runner, policy, clock, emu, 0, 10, 20, 22, 30, 40, 45) == [
        "10:00 applied",
        "10:10 applied",
        "10:20 skipped",
        "10:20 catch-up applied",
        "10:30 skipped",
        "10:40 skipped",
        "10:40 catch-up applied",
    ]

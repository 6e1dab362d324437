"""Issue #16: the ways a write still slipped under crashes and bad replies, one test each,
against the emulator with the fault that causes it (each failed on the code before)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine.executor import Executor
from daemon.engine.resolution import ReadBack, Sweeper
from daemon.engine.schedule_runner import ScheduleRunner
from daemon.engine.trigger_reconciler import TriggerReconciler
from daemon.journal import MemoryJournal, SqliteJournal
from daemon.kernel.errors import OutcomeUnknown
from daemon.kernel.keys import execution_key
from daemon.kernel.writes import WriteIntent
from daemon.policy import load_policy_dir
from daemon.policy.observe import observed
from tests.support.clocks import EmulatorClock
from tests.support.engine import Rig, make_executor
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

RETRY_THEN_SKIP = """
rules:
  - name: retry-upload
    match: {node: {name: upload}, status: failed}
    action: restart
    max_attempts: 1
    backoff: {initial: 5s, factor: 1}
    fallback: skip
  - name: release
    match: {node: {name: approve}, status: paused}
    action: continue
"""
FAILING = [
    {"id": "upload", "name": "upload", "kind": "task", "duration": 5, "behaviour": "fail"},
    {"id": "end", "name": "end", "kind": "task", "duration": 5},
]


def _ops(emu: Emulator) -> list[tuple[str, str]]:
    return [(c["node_id"], c["action"]) for c in emu.changes("operation")]


def _requests(emu: Emulator, method: str, tail: str) -> int:
    return sum(1 for e in emu.ledger if e.method == method and e.path.endswith(tail))


async def _until_finished(rig: Rig, emu: Emulator, client: AomClient, wid: str) -> None:
    for _ in range(40):
        await rig.run(0)
        emu.advance(5)
        if all(e.status.finished for e in await client.list_executions(wid)):
            return
    raise AssertionError("execution never finished")


# -- 1. a 2xx whose body cannot be read is not "applied" -------------------------------


@pytest.mark.parametrize("apply", [True, False])
async def test_unreadable_reply_to_an_operation_is_resolved_by_reading(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, apply: bool
) -> None:
    wid = emu.add_workflow(name="backup", nodes=FAILING)
    emu.start_execution(wid)
    emu.advance(6)  # upload failed
    emu.inject(Fault(kind="malformed", path="/operation$", apply=apply, body="{}", times=1))
    rig = Rig(emu, client, journal, write_rules(tmp_path, RETRY_THEN_SKIP))
    await _until_finished(rig, emu, client, wid)
    outcomes = {r.key.split("/", 2)[-1]: r.outcome for r in await journal.history()}
    # applied or not, the state says so: never journaled "applied" on an unreadable body,
    # never stuck, and the restart took effect exactly once
    assert outcomes["upload/restart/1"] == ("resolved_applied" if apply else "applied")
    assert _ops(emu) == [("upload", "restart"), ("upload", "skip")]
    assert _requests(emu, "POST", "/operation") == (2 if apply else 3)


async def test_unreadable_reply_to_a_terminate_that_did_not_happen_is_sent_again(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(name="backup", nodes=FAILING)
    eid = emu.start_execution(wid)
    emu.advance(6)
    rules = write_rules(
        tmp_path,
        "rules:\n  - {name: stop, match: {node: {name: upload}, status: failed},"
        " action: terminate}\n",
    )
    emu.inject(Fault(kind="malformed", path="/terminate$", body="{}", times=1))
    rig = Rig(emu, client, journal, rules)
    await _until_finished(rig, emu, client, wid)
    assert [c["execution_id"] for c in emu.changes("terminate")] == [eid]
    assert [r.outcome for r in await journal.history()] == ["applied"]


@pytest.mark.parametrize("apply", [True, False])
async def test_unreadable_reply_to_a_trigger_change_is_resolved_by_reading(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, apply: bool
) -> None:
    policy = load_policy_dir(
        write_rules(
            tmp_path,
            """
calendars:
  freeze: {ranges: [{start: "2026-11-26T09:00:00Z", end: "2026-11-26T11:00:00Z"}]}
triggers:
  - {name: freeze-all, select: {names: ["*"]}, off_during: freeze}
""",
        )
    )
    wid = emu.add_workflow(name="nightly", type="cron", cron="0 3 * * *")
    clock = EmulatorClock.of(emu)
    rec = TriggerReconciler(
        client=client, ownership=journal, executor=make_executor(journal, clock), account="t"
    )
    emu.inject(Fault(kind="malformed", path="/trigger/action$", apply=apply, body="ok", times=1))
    await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert emu.workflow(wid).trigger_enabled is not apply
    # the claim follows what happened: kept if disabled, given back if not (no false drift)
    assert (wid in await journal.owned_triggers()) is apply
    emu.advance(60)
    await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())
    assert emu.workflow(wid).trigger_enabled is False
    assert await journal.owned_triggers() == {wid}
    assert {r.outcome for r in await journal.history()} == (
        {"resolved_applied"} if apply else {"resolved_not_applied", "applied"}
    )


# -- 2. a fallback left pending by a kill is resolved ---------------------------------


async def test_a_fallback_left_pending_by_a_kill_is_resolved_and_sent(
    emu: Emulator, client: AomClient, tmp_path: Path
) -> None:
    wid = emu.add_workflow(name="backup", nodes=FAILING)
    eid = emu.start_execution(wid)
    emu.advance(6)
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    await journal.open()
    try:
        # what a kill in the middle of the fallback leaves: its intent, no outcome, and
        # the one restart attempt used (decided on the node's earlier failure)
        execution = await client.get_execution(wid, eid)
        earlier = '["pausing", "upload", "fail", 0, 1, "{}"]'
        for segment, outcome in (("restart", "applied"), ("fallback-skip", None)):
            fp = earlier if outcome else observed(execution, "upload")
            key = execution_key(eid, "upload", segment, 1)
            intent = WriteIntent(
                key=key,
                kind=segment.removeprefix("fallback-"),
                workflow_id=wid,
                execution_id=eid,
                node_id="upload",
                rule="retry-upload",
                observed=fp,
            )
            await journal.begin(intent, EmulatorClock.of(emu).now() - timedelta(minutes=5))
            if outcome is not None:
                await journal.finish(
                    key, outcome, request_id=None, error=None, at=EmulatorClock.of(emu).now()
                )
        rig = Rig(emu, client, journal, write_rules(tmp_path, RETRY_THEN_SKIP))
        await _until_finished(rig, emu, client, wid)
        rows = {r.key: r.outcome for r in await journal.history()}
        assert _ops(emu) == [("upload", "skip")]
        assert rows[execution_key(eid, "upload", "fallback-skip", 1)] == "applied"
        assert "pending" not in rows.values()
    finally:
        await journal.close()


# -- 3. a scheduled run is resolved with evidence that belongs to it ------------------

SCHEDULE = """
schedules:
  - name: nightly-backup
    cron: "*/10 * * * *"
    timezone: UTC
    action: {execute: {workflow_name: backup}}
    misfire_grace_seconds: 600
"""


def _runner(emu: Emulator, client: AomClient, journal: MemoryJournal) -> ScheduleRunner:
    return ScheduleRunner(
        client=client,
        journal=journal,
        executor=make_executor(journal, EmulatorClock.of(emu)),
        account="t",
    )


async def _tick(runner: ScheduleRunner, tmp_path: Path, emu: Emulator) -> list[str]:
    policy = load_policy_dir(write_rules(tmp_path, SCHEDULE))
    results = await runner.tick(
        policy.schedules,
        policy.built_calendars,
        policy.schedule_sources,
        EmulatorClock.of(emu).now(),
    )
    return [r.outcome for r in results]


async def test_a_manual_run_just_before_the_fire_time_does_not_hide_a_missed_run(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """The reply of the scheduled execute is lost and it did NOT happen; a person had
    started the workflow two minutes before. That run was taken as proof (the skew
    allowance looked back five minutes from the fire time): a backup that never ran was
    recorded as done."""
    wid = emu.add_workflow(name="backup", nodes=[{"id": "n", "kind": "task", "duration": 5}])
    runner = _runner(emu, client, journal)
    await _tick(runner, tmp_path, emu)  # 10:00 runs; the runner has a last tick now
    emu.advance(8 * 60)
    emu.start_execution(wid)  # 10:08, a person
    emu.advance(2 * 60)  # 10:10
    emu.inject(Fault(kind="reset", path=f"/{wid}/executions$", method="POST", times=1))
    assert await _tick(runner, tmp_path, emu) == ["unknown"]  # nothing new yet: look again
    emu.advance(30)
    assert await _tick(runner, tmp_path, emu) == ["resolved_not_applied"]
    emu.advance(30)
    assert await _tick(runner, tmp_path, emu) == ["applied"]
    assert len(await client.list_executions(wid)) == 3  # 10:00, the person's, 10:10


async def test_a_lost_reply_with_two_new_executions_is_ambiguous_and_notified(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    from daemon.engine.notify import Notifier

    wid = emu.add_workflow(name="backup", nodes=[{"id": "n", "kind": "task", "duration": 5}])
    notifier = Notifier(webhook.url)
    runner = _runner(emu, client, journal)
    runner.notifier = notifier
    # a person starts the workflow in the same instant as our (applied, reply lost) run
    emu.inject(Fault(kind="applied_then_lost", path=f"/{wid}/executions$", method="POST"))
    real_execute = client.execute_workflow

    async def with_a_concurrent_run(workflow_id: str) -> object:
        emu.start_execution(wid)
        return await real_execute(workflow_id)

    client.execute_workflow = with_a_concurrent_run  # type: ignore[method-assign,assignment]  # the person's click, at the moment of our send
    assert await _tick(runner, tmp_path, emu) == ["ambiguous"]
    await notifier.flush()
    assert [b["kind"] for b in webhook.received] == ["outcome_ambiguous"]
    emu.advance(60)
    assert await _tick(runner, tmp_path, emu) == []  # final: never resent
    assert len(await client.list_executions(wid)) == 2


# -- 4. a trigger PUT goes out once ----------------------------------------------------


async def test_a_trigger_put_whose_reply_is_lost_is_sent_once(
    emu: Emulator, client: AomClient
) -> None:
    """aiohttp resent the idempotent PUT by itself when the connection broke after it
    was sent, so an applied-then-lost disable went out twice."""
    wid = emu.add_workflow(name="nightly", type="cron", cron="0 3 * * *")
    await client.list_workflows()  # a warm keep-alive connection, as in the daemon
    emu.inject(Fault(kind="applied_then_lost", path="/trigger/action$", times=1))
    with pytest.raises(OutcomeUnknown):
        await client.set_trigger(wid, False)
    assert _requests(emu, "PUT", "/trigger/action") == 1


# -- 5. every journal row ends in a final outcome that matches the cloud ---------------


async def test_the_sweep_closes_rows_left_open_with_what_the_cloud_says(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(name="release", nodes=[{"id": "approve", "kind": "pause"}])
    eid = emu.start_execution(wid)
    emu.advance(1)
    clock = EmulatorClock.of(emu)
    fp = observed(await client.get_execution(wid, eid), "approve")
    key = execution_key(eid, "approve", "continue", 1)
    intent = WriteIntent(
        key=key, kind="continue", workflow_id=wid, execution_id=eid, node_id="approve",
        observed=fp,
    )  # fmt: skip
    await journal.begin(intent, clock.now())
    await client.operate(wid, eid, "continue", "approve")  # it went out; then a kill
    emu.advance(30)  # the execution finished since: the old resolver said "moot"
    executor: Executor = make_executor(journal, clock)
    sweeper = Sweeper(
        read_back=ReadBack(client=client, clock=clock), journal=journal, executor=executor
    )
    assert await sweeper.sweep() == 1
    assert (await journal.intent(key)).outcome == "resolved_applied"  # type: ignore[union-attr]
    assert await journal.unresolved() == []


async def test_the_sweep_reports_what_cannot_be_read_back_once(
    emu: Emulator, client: AomClient, journal: MemoryJournal, webhook: Webhook
) -> None:
    """A DataArts action cut by a kill, and an execute journaled without evidence (by an
    older aomd): nothing can tell whether they happened, so each is closed as
    ``unknown`` and a person is told once — not guessed, not left pending."""
    from daemon.engine.notify import Notifier

    clock = EmulatorClock.of(emu)
    for key, kind in (
        ("schedule/t/collect/2026-11-26T09:00:00+00:00", "dataarts_start"),
        ("schedule/t/backup/2026-11-26T09:00:00+00:00", "execute"),
    ):
        await journal.begin(WriteIntent(key=key, kind=kind, workflow_id="w"), clock.now())
    notifier = Notifier(webhook.url)
    sweeper = Sweeper(
        read_back=ReadBack(client=client, clock=clock),
        journal=journal,
        executor=make_executor(journal, clock),
        notifier=notifier,
        account="t",
    )
    for _ in range(2):
        await sweeper.sweep()
    await notifier.flush()
    assert {r.outcome for r in await journal.history()} == {"unknown"}
    assert sorted(b["kind"] for b in webhook.received) == ["outcome_unknown"] * 2


# -- and: a person is told once, a first start runs nothing from before -----------------


async def test_an_unhandled_stop_is_told_once_across_restarts(
    emu: Emulator, client: AomClient, tmp_path: Path, webhook: Webhook
) -> None:
    from daemon.engine.notify import Notifier

    wid = emu.add_workflow(name="other", nodes=[{"id": "gate", "kind": "pause"}])
    emu.start_execution(wid)
    emu.advance(1)
    url = webhook.url
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    await journal.open()
    try:
        for _ in range(3):  # three processes, one journal
            notifier = Notifier(url)
            rig = Rig(emu, client, journal, write_rules(tmp_path, RETRY_THEN_SKIP), notifier)
            await rig.run(0)
            await notifier.flush()
            assert len(rig.handler.unhandled) == 1  # still counted by each process
    finally:
        await journal.close()
    assert [b["kind"] for b in webhook.received] == ["unhandled_pause"]


async def test_the_first_start_runs_nothing_from_before_it_ran(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(name="backup", nodes=[{"id": "n", "kind": "task", "duration": 5}])
    emu.advance(5 * 60)  # 10:05: the 10:00 fire time was before aomd ever ran
    runner = _runner(emu, client, journal)
    assert await _tick(runner, tmp_path, emu) == []
    assert await client.list_executions(wid) == []
    emu.advance(5 * 60)
    assert await _tick(runner, tmp_path, emu) == ["applied"]

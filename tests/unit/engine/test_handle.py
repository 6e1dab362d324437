"""ExecutionHandler + decide end to end, in process: emulator, real client, real Watcher
polls, MemoryJournal, real Executor, real policy files. Emulated time moves only with
``emu.advance`` (speed 0), so every scenario is deterministic and fast."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.notify import Notifier
from daemon.journal import MemoryJournal
from daemon.kernel.model import Status, Workflow
from tests.support.engine import DECISION_KEYS, Rig
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

RULES = """
rules:
  - name: retry-patch
    match: {workflow: {name: "patch-*"}, node: {name: apply}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 30s, factor: 2, max: 10m}
    fallback: skip
  - name: retry-upload
    match: {workflow: {name: "backup-*"}, node: {name: upload}, status: failed}
    action: restart
    max_attempts: 2
    backoff: {initial: 10s, factor: 1}
    fallback: skip
  - name: approve-release
    match: {workflow: {name: "release-*"}, node: {name: approve}, status: paused}
    action: continue
    delay: 10m
  - name: stop-overlong
    match: {workflow: {name: "batch-*"}, status: running, min_age: 2h}
    action: terminate
"""

TASK = {"kind": "task", "duration": 20}


async def test_node_failing_twice_is_retried_with_backoff_then_succeeds(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="patch-linux",
        nodes=[
            {"id": "pre", "name": "pre", **TASK},
            {"id": "apply", "name": "apply", **TASK, "behaviour": {"fail_times": 2}},
            {"id": "verify", "name": "verify", **TASK},
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(600)
    assert (await client.get_execution(wid, eid)).status is Status.SUCCESS
    restarts = [e for e in emu.ledger if e.change and e.change.get("action") == "restart"]
    assert len(restarts) == 2
    # attempt 1 at once; attempt 2 waits the 30 s backoff, counted from attempt 1
    # (decide's semantics: a node running longer than the backoff is retried at once)
    gap = restarts[1].time - restarts[0].time
    assert gap >= timedelta(seconds=30)
    rows = await journal.history()
    assert [(r.kind, r.attempt, r.outcome) for r in rows] == [
        ("restart", 1, "applied"),
        ("restart", 2, "applied"),
    ]


async def test_node_failing_always_gets_max_attempts_then_fallback_skip(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="backup-db",
        nodes=[
            {"id": "upload", "name": "upload", **TASK, "behaviour": "fail"},
            {"id": "cleanup", "name": "cleanup", **TASK},
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(600)
    actions = [c.get("action") for c in emu.changes() if c.get("kind") == "operation"]
    assert actions == ["restart", "restart", "skip"]
    assert (await client.get_execution(wid, eid)).status.finished
    kinds = [(r.kind, r.outcome) for r in await journal.history()]
    assert kinds == [("restart", "applied"), ("restart", "applied"), ("skip", "applied")]


async def test_pause_is_continued_after_its_delay(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="release-web",
        nodes=[
            {"id": "build", "name": "build", **TASK},
            {"id": "approve", "name": "approve", "kind": "pause"},
            {"id": "deploy", "name": "deploy", **TASK},
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(60)
    assert (
        await client.get_execution(wid, eid)
    ).status is Status.PAUSING  # waiting out the 10 min delay
    assert emu.changes("operation") == []
    await rig.run(900, step=30)
    [cont] = [e for e in emu.ledger if e.change and e.change.get("kind") == "operation"]
    assert cont.change is not None
    assert cont.change["action"] == "continue"
    assert (await client.get_execution(wid, eid)).status is Status.SUCCESS


async def test_execution_past_its_deadline_is_terminated(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="batch-reindex", nodes=[{"id": "r", "name": "r", "kind": "task", "duration": 36000}]
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(3600, step=600)
    assert not (await client.get_execution(wid, eid)).status.finished
    await rig.run(4200, step=600)
    assert (await client.get_execution(wid, eid)).status in (Status.CANCEL, Status.CANCELING)
    assert [c["kind"] for c in emu.changes()] == ["terminate"]


async def test_unmatched_pause_is_left_alone_reported_once_and_notified(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    # in scope (a rule matches the workflow), but no rule matches its pause node
    wid = emu.add_workflow(
        name="release-api",
        nodes=[{"id": "gate", "name": "gate", "kind": "pause"}, {"id": "d", "name": "d", **TASK}],
    )
    eid = emu.start_execution(wid)
    notifier = Notifier(webhook.url)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES), notifier)
    with capture_logs() as logs:
        await rig.run(120, step=10)
    assert emu.changes() == []
    assert rig.handler.unhandled.keys() == {(eid, "gate")}
    unhandled = [e for e in logs if e["event"] == "unhandled_pause"]
    assert len(unhandled) == 1
    assert {
        "workflow_id",
        "execution_id",
        "node_id",
        "rule",
        "action",
        "attempt",
        "reason",
        "outcome",
        "request_id",
        "dry_run",
    } <= unhandled[0].keys()
    # deliver the one queued notification through the real HTTP path
    delivered = await notifier.flush()
    assert delivered == 1
    [body] = webhook.received
    assert (body["kind"], body["execution_id"], body["node_id"]) == ("unhandled_pause", eid, "gate")
    # a person terminates it: the entry is retired, not kept forever
    await client.terminate(wid, eid)
    await rig.run(10)
    assert rig.handler.unhandled == {}


async def test_workflow_leaving_scope_retires_its_unhandled_entries(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(name="release-x", nodes=[{"id": "g", "name": "g", "kind": "pause"}])
    emu.start_execution(wid)
    policies = write_rules(tmp_path, RULES)
    rig = Rig(emu, client, journal, policies)
    await rig.run(10)
    assert len(rig.handler.unhandled) == 1
    assert wid in rig.watcher._due_at
    rig.watcher.scope = lambda: lambda wf: False  # type: ignore[assignment,misc]
    await rig.watcher.discover()
    assert rig.handler.unhandled == {}
    assert wid not in rig.watcher._due_at
    _ = Workflow  # imported for the type of scope callables


async def test_refused_write_is_retried_at_the_fast_interval_not_every_second(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """While a guard refuses (up to a minute), re-polling each workflow every second
    would spike API calls exactly when aomd should calm down."""
    wid = emu.add_workflow(
        name="release-web", nodes=[{"id": "approve", "name": "approve", "kind": "pause"}]
    )
    emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES.replace("delay: 10m", "")))
    rig.watcher.fast = 5.0
    rig.executor.stopping = True  # every write refused
    await rig.watcher.discover()
    loop = asyncio.get_running_loop()
    before = loop.time()
    await rig.watcher.poll_all()
    assert rig.watcher._due_at[wid] >= before + rig.watcher.fast
    assert emu.changes() == []
    rig.executor.stopping = False
    await rig.watcher.poll_all()
    assert [c["action"] for c in emu.changes()] == ["continue"]


@pytest.mark.parametrize("duration", [20, 1], ids=["seen-running", "never-seen-running"])
async def test_delay_counts_from_each_new_stop_not_the_first_one(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, duration: int
) -> None:
    """``delay`` is "act once the node has been stopped this long": after a restart the
    node runs and stops again, and that stop waits its own delay. The first sighting
    was never cleared, so every later attempt went out after the backoff alone."""
    rules = """
rules:
  - name: retry-flaky
    match: {workflow: {name: "flaky-*"}, node: {name: step}, status: failed}
    action: restart
    max_attempts: 3
    delay: 5m
    backoff: {initial: 10s, factor: 1}
"""
    wid = emu.add_workflow(
        name="flaky-job",
        nodes=[
            {
                "id": "step",
                "name": "step",
                "kind": "task",
                "duration": duration,  # 1 s: fails again between two polls
                "behaviour": {"fail_times": 2},
            }
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, rules))
    await rig.run(20 * 60)
    assert (await client.get_execution(wid, eid)).status is Status.SUCCESS
    restarts = [e for e in emu.ledger if e.change and e.change.get("action") == "restart"]
    assert len(restarts) == 2
    # the second failure came right after the first restart; its delay runs from then
    assert restarts[1].time - restarts[0].time >= timedelta(minutes=5)


async def test_held_stops_are_logged_once_counted_and_released(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    """A continue due inside a freeze (calendar gate) is held: ``action_held`` once, with
    until when, in ``handler.held`` (the gauge); then an override holds it past the
    freeze's end; ending the override releases it."""
    from daemon.engine.overrides import OverrideBook
    from daemon.kernel.overrides import Override
    from daemon.policy import load_policy_dir

    now = emu.now()
    freeze_end = now + timedelta(minutes=5)
    text = f"""
calendars:
  freeze: {{ranges: [{{start: "{(now - timedelta(hours=1)).isoformat()}", end: "{freeze_end.isoformat()}"}}]}}
rules:
  - name: approve-release
    match: {{workflow: {{name: "release-*"}}, node: {{name: approve}}, status: paused}}
    action: continue
    calendar: {{outside: freeze}}
"""
    wid = emu.add_workflow(
        name="release-web",
        nodes=[
            {"id": "approve", "name": "approve", "kind": "pause"},
            {"id": "d", "name": "d", **TASK},
        ],
    )
    eid = emu.start_execution(wid)
    policies = write_rules(tmp_path, text)
    rig = Rig(emu, client, journal, policies)
    book = OverrideBook(journal=journal)
    rig.handler.overrides = book
    await journal.add_override(
        Override(
            id="ov-hold",
            target_kind="workflow",
            target=wid,
            state="hold",
            start=now,
            until=now + timedelta(hours=2),
            ticket="CHG-5",
            reason="release on hold",
            who="alice",
        ),
        now,
    )
    await book.refresh(load_policy_dir(policies), now)
    with capture_logs() as logs:
        await rig.run(120, step=10)  # inside the freeze: the gate holds it
        held = [e for e in logs if e["event"] == "action_held"]
        assert len(held) == 1  # once, not every poll
        assert held[0]["until"] == freeze_end.isoformat()
        assert held[0].keys() >= DECISION_KEYS  # findable like every other decision
        assert held[0]["outcome"] == "held"
        assert "waiting to be outside calendar 'freeze'" in held[0]["reason"]
        assert list(rig.handler.held) == [(eid, "approve")]
        await rig.run(300, step=10)  # the freeze is over; the override still holds it
        assert emu.changes("operation") == []
        held = [e for e in logs if e["event"] == "action_held"]
        assert len(held) == 2
        assert "override ov-hold CHG-5" in held[1]["reason"]
    await journal.end_override("ov-hold", "bob", emu.now())
    await book.refresh(load_policy_dir(policies), emu.now())
    await rig.run(30, step=10)
    [op] = emu.changes("operation")
    assert op["action"] == "continue"
    assert rig.handler.held == {}

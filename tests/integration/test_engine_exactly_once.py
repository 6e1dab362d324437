"""Exactly-once under lost replies, in process: the real pass loop (Watcher, handler,
decide, Executor, SqliteJournal) against the emulator with seeded ``applied_then_lost`` and
``reset`` faults on every write path. Every write lands at most once per key, nothing is
missed, and every lost reply was resolved by reading, never by resending."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from daemon.emulator import Fault
from daemon.journal import SqliteJournal
from tests.support.clocks import T0
from tests.support.emulators import running_emulator, token_client
from tests.support.engine import Rig
from tests.support.policies import write_rules

PID = "f" * 32
RULES = """
rules:
  - name: retry-patch
    match: {workflow: {name: "patch-*"}, node: {name: apply}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 10s, factor: 1}
    fallback: skip
  - name: retry-upload
    match: {workflow: {name: "backup-*"}, node: {name: upload}, status: failed}
    action: restart
    max_attempts: 2
    backoff: {initial: 10s, factor: 1}
    fallback: skip
  - name: approve
    match: {workflow: {name: "release-*"}, node: {name: approve}, status: paused}
    action: continue
"""
TASK = {"kind": "task", "duration": 10}


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_lost_replies_never_double_a_write(tmp_path: Path, seed: int) -> None:
    async with running_emulator(
        project_id=PID, token="tok", speed=0, seed=seed, start_time=T0
    ) as emu:
        client = token_client(emu, token="tok")
        journal = SqliteJournal(tmp_path / "journal.sqlite")
        await journal.open()
        try:
            kinds: dict[str, str] = {}
            for i in range(4):
                for name, nodes in (
                    (
                        "patch",
                        [{"id": "apply", "name": "apply", **TASK, "behaviour": {"fail_times": 2}}],
                    ),
                    ("backup", [{"id": "upload", "name": "upload", **TASK, "behaviour": "fail"}]),
                    ("release", [{"id": "approve", "name": "approve", "kind": "pause"}]),
                ):
                    wid = emu.add_workflow(
                        name=f"{name}-{i}", nodes=[*nodes, {"id": "end", "name": "end", **TASK}]
                    )
                    kinds[emu.start_execution(wid)] = name
            emu.inject(
                Fault(kind="applied_then_lost", path="/(operation|terminate)$", probability=0.3),
                Fault(kind="reset", path="/(operation|terminate)$", probability=0.2),
            )
            rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
            for _ in range(60):
                await rig.run(0)
                emu.advance(5)
                executions = [
                    ex for wid in rig.watcher.workflows for ex in await client.list_executions(wid)
                ]
                if all(ex.status.finished for ex in executions):
                    break
            applied = Counter(
                (c["execution_id"], c["node_id"], c["action"]) for c in emu.changes("operation")
            )
            lost = sum(1 for e in emu.ledger if e.fault == "applied_then_lost")
            resets = sum(1 for e in emu.ledger if e.fault == "reset")
            rows = await journal.history()
            statuses = {
                ex.execution_id: ex.status
                for wid in rig.watcher.workflows
                for ex in await client.list_executions(wid)
            }
        finally:
            await journal.close()
            await client.close()
    assert lost > 0  # the faults really fired
    assert resets > 0
    expected = {
        "patch": {"restart": 2},
        "backup": {"restart": 2, "skip": 1},
        "release": {"continue": 1},
    }
    for eid, kind in kinds.items():
        got = {a: n for (e, _, a), n in applied.items() if e == eid}
        assert got == expected[kind], (kind, eid, got)
    assert all(status.finished for status in statuses.values()), statuses
    assert statuses.keys() == kinds.keys()
    # every journaled intent ended applied (a lost reply resolved by reading counts too)
    assert {r.outcome for r in rows} <= {"applied", "resolved_applied"}
    assert any(r.outcome == "resolved_applied" for r in rows)

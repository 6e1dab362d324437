"""A diamond workflow on the emulator, driven by the real pass loop: two branches fail,
a third pauses, and aomd handles every stopped node in the same pass, per node."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.journal import MemoryJournal
from daemon.kernel.model import Status
from tests.support.engine import Rig
from tests.support.policies import write_rules

RULES = """
rules:
  - name: retry-branches
    match: {workflow: {name: "diamond-*"}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 30s, factor: 1, jitter: 0}
    fallback: skip
  - name: release-gate
    match: {workflow: {name: "diamond-*"}, node: {name: gate}, status: paused}
    action: continue
    delay: 2m
"""


async def test_diamond_two_failing_branches_and_a_pause_are_handled_together(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="diamond-patch",
        nodes=[
            {"id": "start", "duration": 5},
            {"id": "left", "parents": ["start"], "duration": 20, "behaviour": {"fail_times": 2}},
            {"id": "right", "parents": ["start"], "duration": 20, "behaviour": {"fail_times": 1}},
            {"id": "gate", "parents": ["start"], "kind": "pause"},
            {"id": "join", "parents": ["left", "right", "gate"], "duration": 5},
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(600)

    assert (await client.get_execution(wid, eid)).status is Status.SUCCESS
    ops = [(e.time, e.change) for e in emu.ledger if e.change and e.change["kind"] == "operation"]
    by_node = Counter((c["node_id"], c["action"]) for _, c in ops)
    # only the failed branches are restarted, each as often as it failed; the gate once
    assert by_node == {("left", "restart"): 2, ("right", "restart"): 1, ("gate", "continue"): 1}
    first_left = next(t for t, c in ops if c["node_id"] == "left")
    first_right = next(t for t, c in ops if c["node_id"] == "right")
    assert first_left == first_right, "both failed branches restarted in the same pass"
    gate = next(t for t, c in ops if c["node_id"] == "gate")
    assert gate > first_left  # the pause waited its own 2 min delay meanwhile
    rows = await journal.history()
    assert sorted(r.key for r in rows) == sorted(
        [
            f"exec/{eid}/gate/continue/1",
            f"exec/{eid}/left/restart/1",
            f"exec/{eid}/left/restart/2",
            f"exec/{eid}/right/restart/1",
        ]
    )
    assert all(r.outcome == "applied" for r in rows)
    detail = await client.get_execution(wid, eid)
    assert [n.node_id for n in detail.nodes].count("join") == 1


async def test_a_branch_no_rule_matches_is_reported_while_the_others_are_handled(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = emu.add_workflow(
        name="diamond-audit",
        nodes=[
            {"id": "start", "duration": 5},
            {"id": "left", "parents": ["start"], "duration": 5, "behaviour": {"fail_times": 1}},
            {"id": "hold", "parents": ["start"], "kind": "pause"},
            {"id": "join", "parents": ["left", "hold"], "duration": 5},
        ],
    )
    eid = emu.start_execution(wid)
    rig = Rig(emu, client, journal, write_rules(tmp_path, RULES))
    await rig.run(120)
    detail = await client.get_execution(wid, eid)
    assert detail.status is Status.PAUSING  # "hold" waits for a person
    assert [(n.node_id, n.status) for n in detail.nodes if n.node_id == "left"] == [
        ("left", Status.SUCCESS)
    ]
    assert rig.handler.unhandled.keys() == {(eid, "hold")}
    reports = [r for r in await journal.history() if r.kind == "unhandled"]
    assert [r.node_id for r in reports] == ["hold"]

"""Exactly-once under SIGKILL: 20 seeded kills at random moments with lost replies on.

The emulator drops the reply of ~30% of operations after applying them
(``applied_then_lost``), and the daemon is killed with SIGKILL at random moments and
restarted each time. The emulator's ledger is the witness: every node must receive
exactly the writes the policy calls for (never a second restart of the same attempt,
never an operation the execution's state no longer allows), and every stopped
execution must be handled in the end.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.harness import emulator, start_daemon, write_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KILLS = 20
SEED = 20261126


def _scenario() -> str:
    lines = ["seed: 11", "workflows:"]
    for i in range(3):
        lines += [
            f"  - {{id: wf-twice-{i}, name: twice-{i}, type: manual, start: 2, nodes: [",
            "      {id: patch, name: patch, kind: task, duration: 4.0, behaviour: {fail_times: 2}},",
            "      {id: verify, name: verify, kind: task, duration: 0.1, behaviour: succeed}]}",
        ]
    for i in range(2):
        lines += [
            f"  - {{id: wf-always-{i}, name: always-{i}, type: manual, start: 2, nodes: [",
            "      {id: upload, name: upload, kind: task, duration: 4.0, behaviour: fail},",
            "      {id: cleanup, name: cleanup, kind: task, duration: 0.1, behaviour: succeed}]}",
        ]
    for i in range(3):
        lines += [
            f"  - {{id: wf-gate-{i}, name: gate-{i}, type: manual, start: 2, nodes: [",
            "      {id: build, name: build, kind: task, duration: 6.0, behaviour: succeed},",
            "      {id: approve, name: approve, kind: pause},",
            "      {id: deploy, name: deploy, kind: task, duration: 0.1, behaviour: succeed}]}",
        ]
    return "\n".join(lines) + "\n"


POLICY = """
rules:
  - name: retry-patch
    match: {node: {name: patch}, status: [failed]}
    action: restart
    max_attempts: 3
    backoff: {initial: 0.3s, factor: 1, max: 0.3s}
    fallback: leave
  - name: retry-upload-then-skip
    match: {node: {name: upload}, status: [failed]}
    action: restart
    max_attempts: 2
    backoff: {initial: 0.3s, factor: 1, max: 0.3s}
    fallback: skip
  - name: release-gates
    match: {node: {name: approve}, status: [paused]}
    action: continue
"""


def _all_finished(state: dict) -> bool:  # type: ignore[type-arg]
    return all(
        ex["status"] in ("success", "fail", "cancel")
        for wf in state["workflows"]
        for ex in wf["executions"]
    )


def test_sigkill_never_doubles_or_misses_a_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    (tmp_path / "scenario.yaml").write_text(_scenario())
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "rules.yaml").write_text(POLICY)
    with emulator(tmp_path / "scenario.yaml", seed=5) as emu:
        emu.admin(
            "POST",
            "faults",
            {"kind": "applied_then_lost", "path": "/operation$", "probability": 0.3},
        )
        cfg = write_settings(tmp_path, emu.url)
        busy_runs = 0
        for _ in range(KILLS):
            daemon = start_daemon(cfg)
            daemon.wait_event("daemon_ready", timeout=30)
            time.sleep(rng.uniform(0.2, 2.0))
            daemon.kill()
            if daemon.find("action_sent") or daemon.find("outcome_resolved"):
                busy_runs += 1
        daemon = start_daemon(cfg)
        try:
            daemon.wait_event("daemon_ready", timeout=30)
            daemon.wait_for(lambda: _all_finished(emu.state()), timeout=60, what="all handled")
        finally:
            assert daemon.stop() == 0
        ledger = emu.ledger()
        state = emu.state()

    assert busy_runs >= 3, f"only {busy_runs} kills landed while the daemon was writing"
    ops = [e for e in ledger if e["change"] and e["change"]["kind"] == "operation"]
    lost = [e for e in ops if e["fault"] == "applied_then_lost"]
    assert lost, "the fault must actually have hit some writes"
    refused = [
        e
        for e in ledger
        if e["method"] == "POST" and "/operation" in e["path"] and e["status"] == 400
    ]
    assert refused == [], f"writes the state did not allow (a blind repeat?): {refused}"

    per_node = Counter(
        (e["change"]["execution_id"], e["change"]["node_id"], e["change"]["action"]) for e in ops
    )
    executions = {
        ex["execution_id"]: wf["id"] for wf in state["workflows"] for ex in wf["executions"]
    }
    assert len(executions) == 16
    for eid, wid in executions.items():
        if wid.startswith("wf-twice"):
            assert per_node[(eid, "patch", "restart")] == 2, (eid, per_node)
        elif wid.startswith("wf-always"):
            assert per_node[(eid, "upload", "restart")] == 2, (eid, per_node)
            assert per_node[(eid, "upload", "skip")] == 1, (eid, per_node)
        else:
            assert per_node[(eid, "approve", "continue")] == 1, (eid, per_node)
    assert sum(per_node.values()) == 3 * 2 * 2 + 2 * 2 * 3 + 3 * 2 * 1
    assert all(ex["status"] == "success" for wf in state["workflows"] for ex in wf["executions"])

"""Fail-over without a trace: two replicas, one shared PostgreSQL journal, 20 SIGKILLs.

Two real ``aomd run`` replicas behind a fake Kubernetes Lease API share one journal in a
real PostgreSQL server. The leader is killed with SIGKILL 20 times (seeded moments: in
the middle of retry sequences, inside a freeze, around scheduled runs) while the
emulator drops 30% of write replies after applying them; after each kill the other
replica takes over, and the killed one comes back as the follower. The emulator's
ledger must show: every node got exactly the writes the policy calls for across both
replicas (never more than ``max_attempts``), the triggers the old leader disabled were
re-enabled at the freeze end by whoever led then, every scheduled run happened once,
and no journal row is left open.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.fire_times import minute_boundaries, owning_fire
from tests.support.leases import FakeLeaseApi, serving
from tests.support.postgres import PostgresServer
from tests.support.processes import DaemonProcess, emulator, start_daemon, write_settings

pytest.importorskip("kubernetes_asyncio")  # the Lease client is the 'k8s' extra

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
# (a group of its own would not keep it off the crash test's worker; it needs none: its
# oracle is about exactness, and a new leader now reconciles the moment it leads)

KILLS = 20
SEED = 20261202
FREEZE = (20, 45)
"""Seconds after the start: the cron triggers are off inside."""
GRACE = 50

FLAKY, ALWAYS = 6, 4


def _scenario() -> str:
    lines = ["seed: 3", "workflows:"]
    for i in range(FLAKY):
        lines.append(
            f"  - {{id: wf-flaky-{i}, name: flaky-{i}, type: manual, nodes: ["
            "{id: work, name: work, kind: task, duration: 1.5, behaviour: {fail_times: 2}},"
            " {id: done, name: done, kind: task, duration: 0.2}]}"
        )
    for i in range(ALWAYS):
        lines.append(
            f"  - {{id: wf-always-{i}, name: always-{i}, type: manual, nodes: ["
            "{id: work, name: work, kind: task, duration: 1.5, behaviour: fail},"
            " {id: done, name: done, kind: task, duration: 0.2}]}"
        )
    for i in range(3):
        lines.append(
            f"  - {{id: wf-cron-{i}, name: cron-{i}, type: cron, cron: '0 0 1 1 *', "
            "nodes: [{id: n, kind: task, duration: 0.2}]}"
        )
    lines.append(
        "  - {id: wf-sched, name: sched, type: manual, nodes: [{id: n, kind: task, duration: 0.2}]}"
    )
    return "\n".join(lines) + "\n"


def _policy(t0: datetime) -> str:
    start, end = (t0 + timedelta(seconds=s) for s in FREEZE)
    return f"""
rules:
  - name: retry-flaky
    match: {{workflow: {{name: "flaky-*"}}, node: {{name: work}}, status: failed}}
    action: restart
    max_attempts: 3
    backoff: {{initial: 0.5s, factor: 1, max: 0.5s}}
    fallback: leave
  - name: retry-then-skip
    match: {{workflow: {{name: "always-*"}}, node: {{name: work}}, status: failed}}
    action: restart
    max_attempts: 2
    backoff: {{initial: 0.5s, factor: 1, max: 0.5s}}
    fallback: skip
calendars:
  freeze:
    ranges: [{{start: "{start.isoformat()}", end: "{end.isoformat()}"}}]
triggers:
  - {{name: freeze-crons, select: {{names: ["cron-*"]}}, off_during: freeze}}
schedules:
  - name: every-minute
    cron: "* * * * *"
    timezone: UTC
    action: {{execute: {{workflow_name: sched}}}}
    misfire_grace_seconds: {GRACE}
"""


def _replica(
    tmp: Path, name: str, url: str, lease_url: str, journal_url: str, t0: datetime
) -> Path:
    home = tmp / name
    (home / "policies").mkdir(parents=True)
    (home / "policies" / "all.yaml").write_text(_policy(t0))
    extra = f"""
[leader]
enabled = true
api_server = "{lease_url}"
namespace = "aomd"
lease_name = "aomd-leader"
identity = "{name}"
lease_seconds = 1.5
renew_seconds = 0.3

[journal]
url = "{journal_url}"
"""
    return write_settings(home, url, extra=extra, reconcile_interval=2.0, http=False)


def _finished(state: dict[str, Any]) -> bool:
    return all(
        ex["status"] in ("success", "fail", "cancel")
        for wf in state["workflows"]
        for ex in wf["executions"]
    )


def test_twenty_leader_kills_with_a_shared_journal_leave_no_trace(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    rng = random.Random(SEED)
    journal_url = postgres_server.new_database()
    (tmp_path / "scenario.yaml").write_text(_scenario())
    api = FakeLeaseApi()
    with serving(api) as lease_url, emulator(tmp_path / "scenario.yaml", seed=7) as emu:
        t0 = datetime.fromisoformat(emu.state()["now"])
        cfg = {
            name: _replica(tmp_path, name, emu.url, lease_url, journal_url, t0)
            for name in ("a", "b")
        }
        for i, wid in enumerate([f"wf-flaky-{i}" for i in range(FLAKY)]
                                + [f"wf-always-{i}" for i in range(ALWAYS)]):  # fmt: skip
            at = t0 + timedelta(seconds=2 + 4 * i)
            emu.admin("POST", "executions", {"workflow_id": wid, "at": at.isoformat()})
        emu.admin(
            "POST",
            "faults",
            {"kind": "applied_then_lost", "path": "/(operation|trigger/action|executions)$",
             "probability": 0.3},
        )  # fmt: skip
        procs: dict[str, DaemonProcess] = {n: start_daemon(c) for n, c in cfg.items()}
        takeovers = 0
        try:
            for _ in range(KILLS):
                leader = _wait_leader(api, procs)
                time.sleep(rng.uniform(0.2, 1.5))
                procs[leader].kill()
                other = "b" if leader == "a" else "a"
                seen = len(procs[other].find("leader_acquired"))
                procs[other].wait_for(
                    lambda o=other, s=seen: len(procs[o].find("leader_acquired")) > s,
                    timeout=20,
                    what=f"{other} taking over",
                )
                takeovers += 1
                procs[leader] = start_daemon(cfg[leader])
            end = t0 + timedelta(seconds=FREEZE[1] + 5)
            leader = _wait_leader(api, procs)
            procs[leader].wait_for(
                lambda: (
                    _finished(emu.state()) and datetime.fromisoformat(emu.state()["now"]) >= end
                ),
                timeout=120,
                what="all handled and the freeze over",
            )
            time.sleep(3)  # a start-up sweep and one more pass of the surviving leader
        finally:
            for proc in procs.values():
                if proc.proc.poll() is None:
                    assert proc.stop() == 0
        ledger = emu.ledger()
        state = emu.state()
        stopped_at = datetime.fromisoformat(state["now"])

    # nodes: exactly the policy's writes across both replicas, nothing refused
    refused = [e for e in ledger if e["method"] == "POST" and e["status"] == 400]
    assert refused == [], refused
    per_execution: dict[str, Counter[str]] = {}
    for e in ledger:
        if e["change"] and e["change"]["kind"] == "operation":
            c = e["change"]
            per_execution.setdefault(c["execution_id"], Counter())[c["action"]] += 1
    for wf in state["workflows"]:
        want = (
            {"restart": 2}
            if wf["id"].startswith("wf-flaky")
            else {"restart": 2, "skip": 1}
            if wf["id"].startswith("wf-always")
            else None
        )
        if want is None:
            continue
        (ex,) = wf["executions"]
        assert dict(per_execution.get(ex["execution_id"], {})) == want, (wf["id"], per_execution)
        assert ex["status"] == "success", (wf["id"], ex["status"])
    # triggers: off in the freeze and on after it, once each, whoever led
    toggles: dict[str, list[bool]] = {}
    for e in ledger:
        if e["change"] and e["change"]["kind"] == "trigger":
            toggles.setdefault(e["change"]["workflow_id"], []).append(e["change"]["enabled"])
    for i in range(3):
        assert toggles.get(f"wf-cron-{i}") == [False, True], toggles
    # scheduled runs: once per fire time, none extra
    runs = sorted(
        ex["begin_time"]
        for wf in state["workflows"]
        if wf["id"] == "wf-sched"
        for ex in wf["executions"]
    )
    fires = minute_boundaries(t0, stopped_at)
    owner = Counter(owning_fire(b, fires, GRACE) for b in runs)
    assert None not in owner, (runs, fires)
    assert set(owner.values()) <= {1}, (runs, fires)
    for fire in fires:
        if t0 + timedelta(seconds=3) <= fire <= stopped_at - timedelta(seconds=5):
            assert owner[fire] == 1, (fire, runs)
    # the shared journal: nothing left open
    with psycopg.connect(journal_url) as conn:
        open_rows = conn.execute(
            "SELECT key, outcome FROM intents WHERE outcome IN ('pending', 'unknown')"
        ).fetchall()
    assert open_rows == []
    assert takeovers == KILLS
    holders = [h for _, h in api.writes if h]
    switches = sum(1 for i in range(1, len(holders)) if holders[i] != holders[i - 1])
    assert switches >= KILLS


def _wait_leader(api: FakeLeaseApi, procs: dict[str, DaemonProcess]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        holder = api.holder()
        if (
            holder in procs
            and procs[holder].proc.poll() is None
            and procs[holder].find("leader_acquired")
        ):
            return holder
        time.sleep(0.05)
    raise AssertionError(f"no live leader (lease holder {api.holder()!r})")

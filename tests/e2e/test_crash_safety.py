"""Exactly-once under SIGKILL with every fault kind at once: 60 seeded kills, an oracle.

A real ``aomd run`` is killed with SIGKILL 60 times (seeded): a third of the kills land
during start-up, a third right after a write is logged, a third at a random moment after
it is ready; each time it is restarted on the same journal. Meanwhile the emulator (a
separate process, real time) answers with all its fault kinds mixed: replies lost after
the write was applied, unreadable 2xx replies (applied or not), 5xx, 429, resets, hangs
and latency, on writes and reads alike. The scenario has retries, fallback skips,
fallback terminates, pauses, trigger toggles around two freeze windows and a scheduled
run every minute.

The oracle at the end, from the emulator's ledger (the truth) and the journal file:
every node got exactly the writes the policy calls for, every terminate happened once,
every trigger went off and on once per window and ended on, every fire time ran once,
no write was refused by the state (a blind repeat), and no journal row is left
``pending`` or ``unknown``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.fire_times import minute_boundaries, owning_fire
from tests.support.processes import AK, PROJECT, SK, DaemonProcess, emulator, start_daemon

KILLS = max(60, int(os.environ.get("AOMD_CRASH_KILLS", "60")) // 3 * 3)
"""60 in the suite; ``make crash-soak`` (or AOMD_CRASH_KILLS=N) runs a longer soak."""
SEED = int(os.environ.get("AOMD_CRASH_SEED", "20261201"))
STRETCH = KILLS / 60
"""A longer soak spreads the same work over its longer run."""
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(round(300 * STRETCH)),
    pytest.mark.xdist_group("clock-sensitive"),  # spawns a daemon a second: runs alone
]
WINDOWS = tuple((round(a * STRETCH), round(b * STRETCH)) for a, b in ((25, 45), (60, 80)))
"""Freeze windows, seconds after the test starts: triggers go off inside, on outside."""
SCHEDULE_GRACE = 50
"""Under a minute, so each run belongs to exactly one fire time."""

NODE_FAULTS = "/(operation|terminate)$"
WRITE_FAULTS = "/(operation|terminate|trigger/action)$"


def _faults() -> list[dict[str, Any]]:
    """Every fault kind at once; the first matching one wins, each with its own odds."""
    return [
        {"kind": "applied_then_lost", "path": WRITE_FAULTS, "probability": 0.15},
        {"kind": "reset", "path": WRITE_FAULTS, "probability": 0.08},
        {"kind": "reset", "method": "GET", "probability": 0.01},
        {"kind": "applied_then_lost", "path": "/executions$", "method": "POST",
         "probability": 0.3},
        {"kind": "malformed", "path": WRITE_FAULTS, "probability": 0.05, "apply": True,
         "body": "{}"},
        {"kind": "malformed", "path": WRITE_FAULTS, "probability": 0.05, "body": "<html>"},
        {"kind": "server_error", "path": WRITE_FAULTS, "probability": 0.05},
        {"kind": "throttle", "path": WRITE_FAULTS, "probability": 0.05, "retry_after": 0.2},
        {"kind": "hang", "path": NODE_FAULTS, "probability": 0.02},
        {"kind": "latency", "path": WRITE_FAULTS, "probability": 0.05, "delay": 0.3},
        {"kind": "server_error", "method": "GET", "probability": 0.02},
        {"kind": "throttle", "method": "GET", "probability": 0.02, "retry_after": 0.2},
        {"kind": "malformed", "method": "GET", "probability": 0.01},
        {"kind": "latency", "method": "GET", "probability": 0.03, "delay": 0.2},
    ]  # fmt: skip


# kind -> (first node behaviour, expected writes per execution, final status)
KINDS: dict[str, tuple[str, dict[str, int], str]] = {
    "twice": ("{fail_times: 2}", {"restart": 2}, "success"),
    "always": ("fail", {"restart": 2, "skip": 1}, "success"),
    "term": ("fail", {"restart": 1, "terminate": 1}, "cancel"),
    "gate": ("pause", {"continue": 1}, "success"),
}


def _scenario() -> str:
    lines = ["seed: 11", "workflows:"]
    for kind, (behaviour, _, _) in KINDS.items():
        node = (
            "{id: work, name: work, kind: pause}"
            if behaviour == "pause"
            else f"{{id: work, name: work, kind: task, duration: 1.5, behaviour: {behaviour}}}"
        )
        lines += [
            f"  - {{id: wf-{kind}, name: {kind}, type: manual, start: 0, nodes: [",
            "      {id: prep, name: prep, kind: task, duration: 0.5, behaviour: succeed},",
            f"      {node},",
            "      {id: done, name: done, kind: task, duration: 0.2, behaviour: succeed}]}",
        ]
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
    ranges = ", ".join(
        f'{{start: "{(t0 + timedelta(seconds=a)).isoformat()}", '
        f'end: "{(t0 + timedelta(seconds=b)).isoformat()}"}}'
        for a, b in WINDOWS
    )
    return f"""
rules:
  - name: retry-twice
    match: {{workflow: {{name: twice}}, node: {{name: work}}, status: failed}}
    action: restart
    max_attempts: 3
    backoff: {{initial: 0.3s, factor: 1, max: 0.3s}}
    fallback: leave
  - name: retry-then-skip
    match: {{workflow: {{name: always}}, node: {{name: work}}, status: failed}}
    action: restart
    max_attempts: 2
    backoff: {{initial: 0.3s, factor: 1, max: 0.3s}}
    fallback: skip
  - name: retry-then-terminate
    match: {{workflow: {{name: term}}, node: {{name: work}}, status: failed}}
    action: restart
    max_attempts: 1
    backoff: {{initial: 0.3s, factor: 1, max: 0.3s}}
    fallback: terminate
  - name: release
    match: {{workflow: {{name: gate}}, node: {{name: work}}, status: paused}}
    action: continue
calendars:
  freeze:
    timezone: UTC
    ranges: [{ranges}]
triggers:
  - name: freeze-crons
    select: {{names: ["cron-*"]}}
    off_during: freeze
schedules:
  - name: every-minute
    cron: "* * * * *"
    timezone: UTC
    action: {{execute: {{workflow_name: sched}}}}
    misfire_grace_seconds: {SCHEDULE_GRACE}
"""


def _settings(tmp: Path, url: str) -> Path:
    (tmp / "secrets").mkdir(exist_ok=True)
    (tmp / "secrets" / "ak").write_text(AK)
    (tmp / "secrets" / "sk").write_text(SK)
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f"""
state_dir = "{tmp / "state"}"
policies_dir = "{tmp / "policies"}"
reconcile_interval = 3.0

[[accounts]]
name = "e2e"
project_id = "{PROJECT}"
endpoints = {{aom = "{url}", dataarts = "{url}"}}
ak_file = "{tmp / "secrets" / "ak"}"
sk_file = "{tmp / "secrets" / "sk"}"
requests_per_second = 500
burst = 100
timeout_seconds = 1.5
read_retries = 2

[log]
format = "json"
level = "info"

[http]
enabled = false

[watch]
fast_interval = 0.2
slow_interval = 1.0
discovery_interval = 5.0
"""
    )
    return cfg


WRITE_EVENTS = ("action_sent", "outcome_resolved")


def _writes_logged(daemon: DaemonProcess) -> int:
    return sum(len(daemon.find(e)) for e in WRITE_EVENTS)


def _one_life(cfg: Path, rng: random.Random, mode: str) -> tuple[DaemonProcess, bool]:
    """Start the daemon, kill it as ``mode`` says; True if it was killed mid-work."""
    daemon = start_daemon(cfg)
    if mode == "startup":
        time.sleep(rng.uniform(0.05, 0.8))
        daemon.kill()
        return daemon, False
    try:
        daemon.wait_event("daemon_ready", timeout=30)
    except AssertionError:
        daemon.kill()
        raise
    if mode == "after_write":
        seen = _writes_logged(daemon)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and _writes_logged(daemon) == seen:
            time.sleep(0.01)
        busy = _writes_logged(daemon) > seen
    else:
        time.sleep(rng.uniform(0.1, 1.5))
        busy = _writes_logged(daemon) > 0
    daemon.kill()
    return daemon, busy


def _finished(state: dict[str, Any]) -> bool:
    return all(
        ex["status"] in ("success", "fail", "cancel")
        for wf in state["workflows"]
        for ex in wf["executions"]
    )


def test_sixty_sigkills_with_every_fault_kind_never_double_or_miss_a_write(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    (tmp_path / "scenario.yaml").write_text(_scenario())
    (tmp_path / "policies").mkdir()
    with emulator(tmp_path / "scenario.yaml", seed=5) as emu:
        t0 = datetime.fromisoformat(emu.state()["now"])
        (tmp_path / "policies" / "all.yaml").write_text(_policy(t0))
        # executions start staggered over the first 50 s so writes keep coming
        starts = {
            kind: [round((3 * i + 12 * k) * STRETCH) for i in range(4)]
            for k, kind in enumerate(KINDS)
        }
        for kind, offsets in starts.items():
            for offset in offsets:
                emu.admin(
                    "POST",
                    "executions",
                    {
                        "workflow_id": f"wf-{kind}",
                        "at": (t0 + timedelta(seconds=offset + 1)).isoformat(),
                    },
                )
        emu.admin("POST", "faults", _faults())
        cfg = _settings(tmp_path, emu.url)
        modes = ["startup", "after_write", "random"] * (KILLS // 3)
        rng.shuffle(modes)
        busy_kills = 0
        for mode in modes:
            _, busy = _one_life(cfg, rng, mode)
            busy_kills += busy
        # the last life: runs until everything is handled and the last window is over
        daemon = start_daemon(cfg)
        try:
            daemon.wait_event("daemon_ready", timeout=30)
            end = t0 + timedelta(seconds=WINDOWS[-1][1] + 8)
            daemon.wait_for(
                lambda: (
                    _finished(emu.state()) and datetime.fromisoformat(emu.state()["now"]) >= end
                ),
                timeout=150 * STRETCH,
                what="all handled and the last freeze over",
            )
        finally:
            assert daemon.stop() == 0
        # one more start without faults: its start-up sweep closes what the faults kept
        # open (a read that failed every time); the oracle then looks at the journal
        emu.admin("DELETE", "faults")
        daemon = start_daemon(cfg)
        try:
            daemon.wait_event("daemon_ready", timeout=30)
            time.sleep(2)
        finally:
            assert daemon.stop() == 0
        ledger = emu.ledger()
        state = emu.state()
        stopped_at = datetime.fromisoformat(state["now"])
    rows = _journal(tmp_path / "state")

    ops = [e for e in ledger if e["change"] and e["change"]["kind"] in ("operation", "terminate")]
    assert busy_kills >= 10, f"only {busy_kills} kills landed while the daemon was writing"
    faults = Counter(e["fault"] for e in ledger if e["fault"])
    assert set(faults) >= {
        "applied_then_lost", "malformed", "server_error", "throttle", "reset", "latency",
    }, faults  # fmt: skip

    # nodes: exactly the writes the policy calls for, none refused by the state
    # a refusal is a 400 (StopExecution, seed 003) or, for a node operation, whose seed
    # 001 lists no 4xx, a 500 the fault injector did not make
    refused = [
        e
        for e in ledger
        if e["method"] == "POST"
        and "/cms/" in e["path"]
        and (e["status"] == 400 or (e["status"] == 500 and not e["fault"]))
    ]
    assert refused == [], f"writes the state did not allow (a blind repeat?): {refused}"
    per_execution: dict[str, Counter[str]] = {}
    for e in ops:
        c = e["change"]
        per_execution.setdefault(c["execution_id"], Counter())[c.get("action", "terminate")] += 1
    checked = 0
    for wf in state["workflows"]:
        kind = wf["id"].removeprefix("wf-")
        if kind not in KINDS:
            continue
        _, expected, final = KINDS[kind]
        assert len(wf["executions"]) == 4, wf["id"]
        for ex in wf["executions"]:
            got = dict(per_execution.get(ex["execution_id"], Counter()))
            assert got == expected, (kind, ex["execution_id"], got)
            assert ex["status"] == final, (kind, ex["execution_id"], ex["status"])
            checked += sum(got.values())

    # triggers: off and on once per window, ending on; never doubled
    toggles: dict[str, list[bool]] = {}
    for e in ledger:
        if e["change"] and e["change"]["kind"] == "trigger":
            toggles.setdefault(e["change"]["workflow_id"], []).append(e["change"]["enabled"])
    for i in range(3):
        wid = f"wf-cron-{i}"
        assert toggles.get(wid) == [False, True] * len(WINDOWS), (wid, toggles.get(wid))
        checked += len(toggles[wid])
    assert all(
        wf["trigger_status"] == "enable"
        for wf in state["workflows"]
        if wf["id"].startswith("wf-cron")
    )

    # scheduled runs: every fire time from the first start on ran once, nothing else ran
    sched = next(wf for wf in state["workflows"] if wf["id"] == "wf-sched")
    runs = sorted(ex["begin_time"] for ex in sched["executions"])
    boundaries = minute_boundaries(t0, stopped_at)
    owner = Counter(owning_fire(b, boundaries, SCHEDULE_GRACE) for b in runs)
    assert None not in owner, (runs, boundaries)
    assert all(n == 1 for n in owner.values()), (runs, boundaries)
    must_run = [
        b for b in boundaries if t0 + timedelta(seconds=3) <= b <= stopped_at - timedelta(seconds=5)
    ]
    assert all(owner[b] == 1 for b in must_run), (must_run, runs)
    assert must_run, "the run must span at least one fire time"
    checked += len(runs)

    # the journal agrees: nothing left open
    open_rows = [(k, o) for k, o in rows if o in ("pending", "unknown")]
    assert open_rows == [], open_rows
    assert checked >= 40
    print(
        f"\ncrash oracle: {KILLS} kills ({busy_kills} mid-work), {checked} writes checked, "
        f"faults {dict(faults)}, {len(rows)} journal rows, 0 doubled, 0 missed, 0 open"
    )


def _journal(state_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(state_dir / "journal.sqlite3") as conn:
        return list(conn.execute("SELECT key, outcome FROM intents"))

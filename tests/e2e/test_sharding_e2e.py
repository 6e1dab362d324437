"""Sharding end to end: three replicas, six accounts, one replica killed.

Three real ``aomd run`` replicas with ``leader.sharded`` share one PostgreSQL journal and
a fake Kubernetes Lease API; six accounts, each its own ``aomd emulator``. The replicas
must split the six shards two each (``/metrics`` says which), handle every stopped node
exactly once (the emulators' ledgers), and when one replica is SIGKILLed its two shards
must move to the others within the lease duration plus one retry period, and the stops
that happen on the moved accounts right after the kill must be handled within that bound
plus one poll interval and a second.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.leases import FakeLeaseApi, serving
from tests.support.postgres import PostgresServer
from tests.support.processes import (
    DaemonProcess,
    EmulatorProcess,
    aomd_cmd,
    emulator,
    http_get,
    start_daemon,
    write_settings,
)

pytest.importorskip("kubernetes_asyncio")  # the Lease client is the 'k8s' extra

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.xdist_group("clock-sensitive"),
]

ACCOUNTS = [f"acct-{i}" for i in range(6)]
REPLICAS = ["replica-0", "replica-1", "replica-2"]
LEASE, RENEW = 1.5, 0.3
FAST = 0.2
"""``watch.fast_interval`` as ``write_settings`` writes it."""
GROUP = "aomd-shards"
PER_WAVE = 2
"""Workflows per account started in each wave (one wave before the kill, one after)."""


def _scenario(account: str) -> str:
    lines = ["seed: 3", "workflows:"]
    for i in range(2 * PER_WAVE):
        lines.append(
            f"  - {{id: {account}-wf-{i}, name: flaky-{i}, type: manual, nodes: ["
            "{id: work, name: work, kind: task, duration: 0.4, behaviour: {fail_times: 2}},"
            " {id: done, name: done, kind: task, duration: 0.1}]}"
        )
    return "\n".join(lines) + "\n"


POLICY = """
rules:
  - name: retry-flaky
    match: {workflow: {name: "flaky-*"}, node: {name: work}, status: failed}
    action: restart
    max_attempts: 3
    backoff: {initial: 0.2s, factor: 1, max: 0.2s}
    fallback: leave
"""


def _settings(home: Path, name: str, urls: dict[str, str], lease_url: str, journal: str) -> Path:
    (home / "policies").mkdir(parents=True)
    (home / "policies" / "all.yaml").write_text(POLICY)
    extra = f"""
[leader]
enabled = true
sharded = true
api_server = "{lease_url}"
namespace = "aomd"
lease_name = "{GROUP}"
identity = "{name}"
lease_seconds = {LEASE}
renew_seconds = {RENEW}

[journal]
url = "{journal}"
"""
    return write_settings(home, "", accounts=urls, extra=extra, reconcile_interval=2.0)


def _held(proc: DaemonProcess) -> set[str]:
    """The shards a replica says it holds, from its own ``/metrics``."""
    port = proc.wait_event("daemon_ready")["http_port"]
    _, body = http_get(port, "/metrics")
    return {
        m.group(1)
        for m in re.finditer(r'aomd_shard_held\{account="([^"]+)",bucket="1-of-1"\} 1\.0', body)
    }


def _holders(api: FakeLeaseApi) -> dict[str, str]:
    return {
        lease["metadata"]["labels"]["aomd.io/account"].removeprefix("a-"): lease["spec"].get(
            "holderIdentity"
        )
        or ""
        for (_, _), lease in list(api.leases.items())
        if lease["metadata"].get("labels", {}).get("aomd.io/role") == "shard"
    }


def _start_wave(emus: dict[str, EmulatorProcess], wave: int) -> None:
    for acct, emu in emus.items():
        at = datetime.fromisoformat(emu.state()["now"]) + timedelta(seconds=0.3)
        for i in range(wave * PER_WAVE, (wave + 1) * PER_WAVE):
            emu.admin("POST", "executions", {"workflow_id": f"{acct}-wf-{i}", "at": at.isoformat()})


def _all_done(emus: dict[str, EmulatorProcess], wave: int) -> bool:
    wanted = {f"wf-{i}" for i in range(wave * PER_WAVE, (wave + 1) * PER_WAVE)}
    for emu in emus.values():
        for wf in emu.state()["workflows"]:
            if wf["id"].split("-", 2)[-1] in wanted and (
                not wf["executions"] or wf["executions"][-1]["status"] != "success"
            ):
                return False
    return True


def test_three_replicas_split_six_accounts_and_survive_a_kill(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    journal = postgres_server.new_database()
    api = FakeLeaseApi()
    with contextlib.ExitStack() as stack:
        lease_url = stack.enter_context(serving(api))
        emus: dict[str, EmulatorProcess] = {}
        for n, acct in enumerate(ACCOUNTS):
            scenario = tmp_path / f"{acct}.yaml"
            scenario.write_text(_scenario(acct))
            emus[acct] = stack.enter_context(emulator(scenario, seed=11 + n))
        urls = {acct: emu.url for acct, emu in emus.items()}
        cfgs = {
            name: _settings(tmp_path / name, name, urls, lease_url, journal) for name in REPLICAS
        }
        procs = {name: start_daemon(cfg) for name, cfg in cfgs.items()}
        try:
            # 1. the split: two shards each, and each replica's /metrics agrees
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                holders = _holders(api)
                even = sorted(Counter(holders.values()).values()) == [2, 2, 2]
                if (len(holders) == 6 and even
                        and all(_held(p) == {a for a, h in holders.items() if h == n}
                                for n, p in procs.items())):  # fmt: skip
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"no even split: {_holders(api)}")
            split = dict(holders)
            _start_wave(emus, 0)
            procs["replica-0"].wait_for(lambda: _all_done(emus, 0), timeout=40, what="wave 0")

            # 2. kill the holder of two shards; start the second wave at once
            victim = "replica-1"
            orphans = {a for a, h in _holders(api).items() if h == victim}
            assert len(orphans) == 2
            procs[victim].kill()
            killed = time.monotonic()
            _start_wave(emus, 1)
            moved_after: float | None = None
            while time.monotonic() < killed + 20:
                holders = _holders(api)
                if all(holders[a] not in ("", victim) for a in orphans):
                    moved_after = time.monotonic() - killed
                    break
                time.sleep(0.02)
            assert moved_after is not None, _holders(api)
            procs["replica-0"].wait_for(lambda: _all_done(emus, 1), timeout=40, what="wave 1")
            survivors = {n: p for n, p in procs.items() if n != victim}
            time.sleep(1.0)
            final = {n: _held(p) for n, p in survivors.items()}
            status = subprocess.run(
                aomd_cmd("--config", str(cfgs["replica-0"]), "status"),
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            for proc in procs.values():
                if proc.proc.poll() is None:
                    assert proc.stop() == 0
        senders: dict[tuple[str, int], set[str]] = {}
        for name, proc in procs.items():
            for event in proc.find("action_sent"):
                acct, _, index = event["workflow_id"].rpartition("-wf-")
                senders.setdefault((acct, int(index) // PER_WAVE), set()).add(name)
        ledgers = {acct: emu.ledger() for acct, emu in emus.items()}
        states = {acct: emu.state() for acct, emu in emus.items()}

    # every shard held by exactly one survivor, three each
    assert sorted(len(v) for v in final.values()) == [3, 3]
    assert set().union(*final.values()) == set(ACCOUNTS)
    # the bound: lease duration + one retry period to see it expire + one to take it over
    # (+ a second of scheduling slack on a loaded machine)
    assert moved_after <= LEASE + 2 * RENEW + 1.0, moved_after
    # aomd status says who holds each shard, as /metrics does
    assert status.returncode == 0, status.stderr
    for name, accounts in final.items():
        for acct in accounts:
            assert re.search(
                rf"^  {acct}: held by {name}, renewed \d+s ago$", status.stdout, re.M
            ), status.stdout
    # only the holder of an account's shard wrote for it: the one of the split, and for
    # the moved accounts after the kill one survivor
    for acct in ACCOUNTS:
        assert senders[(acct, 0)] == {split[acct]}, (acct, senders)
        after = senders[(acct, 1)]
        assert after == ({split[acct]} if acct not in orphans else after - {victim}), (acct, after)
        assert len(after) == 1, (acct, after)
    # exactly once across replicas: two restarts per execution (it fails twice), no more
    for acct, ledger in ledgers.items():
        assert not [e for e in ledger if e["method"] == "POST" and e["status"] == 400]
        per_execution: Counter[str] = Counter()
        for e in ledger:
            c = e["change"]
            if c and c["kind"] == "operation":
                assert c["action"] == "restart", c
                per_execution[c["execution_id"]] += 1
        executions = [ex for wf in states[acct]["workflows"] for ex in wf["executions"]]
        assert len(executions) == 2 * PER_WAVE
        for ex in executions:
            assert ex["status"] == "success", (acct, ex)
            assert per_execution[ex["execution_id"]] == 2, (acct, ex["execution_id"])
    # the moved accounts' second wave: the first failure answered within the bound
    bound = LEASE + RENEW + FAST + 1.0 + 1.0  # + one second of slack for a loaded machine
    for acct in orphans:
        wave1 = [
            ex
            for wf in states[acct]["workflows"]
            if int(wf["id"].rsplit("-", 1)[-1]) >= PER_WAVE
            for ex in wf["executions"]
        ]
        ids = {ex["execution_id"] for ex in wave1}
        first_fail = min(ex["begin_time"] for ex in wave1) / 1000 + 0.4  # the node's run
        answers = sorted(
            datetime.fromisoformat(e["time"]).timestamp()
            for e in ledgers[acct]
            if e["change"]
            and e["change"]["kind"] == "operation"
            and e["change"]["execution_id"] in ids
        )
        assert answers, acct
        print(f"{acct}: moved in {moved_after:.2f} s, first stop answered in "
              f"{answers[0] - first_fail:.2f} s (bound {bound:.1f} s)")  # fmt: skip
        assert answers[0] - first_fail <= bound, (acct, answers[0] - first_fail)

"""Two real ``aomd run`` replicas behind a fake Kubernetes Lease API: only the leader writes.

Replica A signs with a token and replica B with AK/SK, so the emulator's ledger tells
whose write each one was. A leads first; it is stopped with SIGTERM (releasing the
lease) while pause nodes keep arriving; B takes over. The ledger must show every pause
continued exactly once, A's writes all before B's, and both having written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.leases import FakeLeaseApi, serving
from tests.support.processes import emulator, start_daemon, write_settings

kubernetes_asyncio = pytest.importorskip("kubernetes_asyncio")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "e2e-leader-token-not-printed"
GATES = 12

POLICY = """
rules:
  - name: release-gates
    match: {node: {name: approve}, status: [paused]}
    action: continue
"""


def _scenario() -> str:
    lines = ["seed: 2", "workflows:"]
    for i in range(GATES):
        lines += [
            f"  - {{id: wf-gate-{i:02d}, name: gate-{i:02d}, type: manual, start: 1, nodes: [",
            f"      {{id: build, name: build, kind: task, duration: {1 + i * 1.5}, "
            "behaviour: succeed},",
            "      {id: approve, name: approve, kind: pause}]}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def lease_api() -> Iterator[tuple[FakeLeaseApi, str]]:
    api = FakeLeaseApi()
    with serving(api) as url:
        yield api, url


def _replica(tmp: Path, name: str, url: str, lease_url: str, *, token: bool) -> Path:
    home = tmp / name
    home.mkdir()
    (home / "policies").mkdir()
    (home / "policies" / "rules.yaml").write_text(POLICY)
    leader = f"""
[leader]
enabled = true
api_server = "{lease_url}"
namespace = "aomd"
lease_name = "aomd-leader"
identity = "{name}"
lease_seconds = 2.0
renew_seconds = 0.5
"""
    return write_settings(home, url, extra=leader, token=TOKEN if token else None)


def test_only_the_leader_writes_and_the_other_takes_over(
    tmp_path: Path, lease_api: tuple[FakeLeaseApi, str]
) -> None:
    api, lease_url = lease_api
    (tmp_path / "scenario.yaml").write_text(_scenario())
    with emulator(tmp_path / "scenario.yaml", token=TOKEN) as emu:
        a = start_daemon(_replica(tmp_path, "a", emu.url, lease_url, token=True))
        b = None
        try:
            a.wait_event("leader_acquired", timeout=30)
            b = start_daemon(_replica(tmp_path, "b", emu.url, lease_url, token=False))
            b.wait_event("daemon_ready", timeout=30)
            # Both run side by side while A writes several more continues; B stands by.
            seen = len(a.find("action_sent"))
            a.wait_for(lambda: len(a.find("action_sent")) >= seen + 3, timeout=30, what="A writes")
            assert not b.find("action_sent")
            assert not b.find("action_decided")
            assert a.stop() == 0
            b.wait_event("leader_acquired", timeout=30)
            b.wait_for(
                lambda: len(emu.changes("operation")) >= GATES, timeout=60, what="all continued"
            )
        finally:
            for d in (a, b):
                if d is not None and d.proc.poll() is None:
                    assert d.stop() == 0
        ledger = emu.ledger()

    # a refused node operation is the seed's 500 (seed 001 lists no 4xx); no faults here
    refused = [
        e
        for e in ledger
        if "/operation" in e["path"]
        and e["status"] is not None
        and e["status"] >= 400
        and not e["fault"]
    ]
    assert refused == [], "a second writer raced the first"
    writes = [e for e in ledger if e["change"] and e["change"]["kind"] == "operation"]
    per_execution = Counter(e["change"]["execution_id"] for e in writes)
    assert len(per_execution) == GATES
    assert set(per_execution.values()) == {1}, per_execution
    by_a = [e["seq"] for e in writes if e["auth"] == "token"]
    by_b = [e["seq"] for e in writes if e["auth"] == "aksk"]
    assert by_a, "A never wrote"
    assert by_b, "B never took over"
    assert max(by_a) < min(by_b), "both replicas wrote in the same period"
    holders = [h for _, h in api.writes if h]
    handovers = [h for i, h in enumerate(holders) if i == 0 or holders[i - 1] != h]
    assert handovers == ["a", "b"]

"""``aomd run`` as an operator runs it: readiness, metrics, reload, signals, sd_notify."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.processes import (
    SK,
    NotifySocket,
    aomd_cmd,
    emulator,
    http_get,
    start_daemon,
    write_settings,
)

pytestmark = pytest.mark.timeout(90)

SCENARIO = """
seed: 3
workflows:
  - id: wf-flaky
    name: flaky-patch
    type: manual
    nodes:
      - {id: patch, name: patch, kind: task, duration: 0.2, behaviour: {fail_times: 1}}
      - {id: done, name: done, kind: task, duration: 0.1, behaviour: succeed}
    start: 1
  - id: wf-gate
    name: gated-release
    type: manual
    nodes:
      - {id: approve, name: approve, kind: pause}
    start: 1
"""

POLICY = """
rules:
  - name: retry-patch
    match: {node: {name: "patch"}, status: [failed]}
    action: restart
    max_attempts: 3
    backoff: {initial: 0.2s, factor: 2, max: 1s}
    fallback: skip
"""

BAD_POLICY = """
rules:
  - name: broken
    match: {status: [failed]}
    action: restart
    max_attempts: -4
"""


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "rules.yaml").write_text(POLICY)
    with emulator(tmp_path / "scenario.yaml") as emu:
        yield tmp_path, emu


def test_run_serves_health_metrics_reloads_and_stops_cleanly(world) -> None:  # type: ignore[no-untyped-def]
    tmp, emu = world
    cfg = write_settings(tmp, emu.url)
    notify = NotifySocket(tmp / "notify.sock")
    daemon = start_daemon(cfg, env={"NOTIFY_SOCKET": str(tmp / "notify.sock")})
    try:
        ready = daemon.wait_event("daemon_ready")
        port = ready["http_port"]
        assert isinstance(port, int)
        assert http_get(port, "/healthz")[0] == 200
        daemon.wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="readyz 200")
        assert "READY=1" in daemon.wait_for(notify.drain, what="READY=1")

        # The failed node is restarted exactly once by the policy and the run completes.
        daemon.wait_for(
            lambda: [c for c in emu.changes("operation") if c["action"] == "restart"],
            what="restart applied",
        )
        status, body = http_get(port, "/metrics")
        assert status == 200
        assert "aomd_writes_total" in body
        assert 'action="restart"' in body
        # the account's watch plan against its budget (requests_per_second 200)
        assert 'aomd_api_budget_calls_per_minute{account="e2e"} 12000.0' in body
        assert 'aomd_watch_scan_period_seconds{account="e2e"}' in body
        assert 'aomd_api_calls_per_minute{account="e2e"}' in body

        # The pause node matches no rule: reported once as unhandled, left alone.
        daemon.wait_event("unhandled_pause")
        assert not [c for c in emu.changes("operation") if c["action"] == "continue"]

        # A broken policy is rejected with file and field; the old one stays in force.
        (tmp / "policies" / "rules.yaml").write_text(BAD_POLICY)
        rejected = daemon.wait_event("policy_rejected")
        assert "rules.yaml" in rejected["error"]
        assert "max_attempts" in rejected["error"]
        assert http_get(port, "/readyz")[0] == 200

        # SIGHUP with a good policy reloads it.
        (tmp / "policies" / "rules.yaml").write_text(POLICY.replace("retry-patch", "retry-2"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_event("policy_reloaded")

        started = time.monotonic()
        assert daemon.stop(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert "STOPPING=1" in notify.drain()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
        notify.close()
    out = daemon.output()
    assert SK not in out
    restarts = [c for c in emu.changes("operation") if c["action"] == "restart"]
    assert len(restarts) == 1


def test_dry_run_decides_but_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    tmp, emu = world
    cfg = write_settings(tmp, emu.url)
    daemon = start_daemon(cfg, "--dry-run")
    try:
        daemon.wait_for(
            lambda: [e for e in daemon.find("action_decided") if e.get("dry_run")],
            what="a dry-run decision",
        )
    finally:
        assert daemon.stop() == 0
    assert emu.changes("operation") == []


def test_invalid_settings_exit_2_before_anything_runs(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    cfg.write_text("[watch]\nfast_interval = -1\n")
    result = subprocess.run(
        aomd_cmd("--config", str(cfg), "run"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "settings.toml" in result.stderr
    assert "watch.fast_interval" in result.stderr


def test_invalid_policy_at_start_exits_2(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text(BAD_POLICY)
    cfg = write_settings(tmp_path, "http://127.0.0.1:9")
    result = subprocess.run(
        aomd_cmd("--config", str(cfg), "run"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "bad.yaml:" in result.stderr
    assert "max_attempts" in result.stderr

"""The ``aomd`` commands a new user types, as subprocesses: demo, plan, schema, version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import aomd_cmd

REPO = Path(__file__).resolve().parents[2]

FREEZE = """
calendars:
  freeze:
    timezone: Europe/Berlin
    ranges: [{start: "2026-12-24T00:00:00", end: "2026-12-27T00:00:00"}]
triggers:
  - name: christmas
    select: {names: ["*"]}
    off_during: freeze
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    action: {execute: {workflow_name: backup-db}}
    blocked_by: [freeze]
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        aomd_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@pytest.mark.timeout(180)
@pytest.mark.xdist_group("clock-sensitive")  # 360x: kept apart from the crash test's load
def test_demo_shows_every_kind_of_work_and_exits_0() -> None:
    # The default 360x for 60 s, as an operator runs it: at 720x a scheduled run had 0.4
    # real seconds of misfire grace, and a loaded machine made it "missed".
    result = run("demo", timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    summary = out[out.index("=== aomd demo") :]
    for action in (
        "restart",
        "skip",
        "continue",
        "terminate",
        "trigger_disable",
        "trigger_enable",
        "execute",
        "dataarts_start",
    ):
        assert f" {action} " in summary, (action, summary)
    assert "wf-cron-report=off" in summary  # a person's disable is respected


def _policies(tmp_path: Path) -> Path:
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "freeze.yaml").write_text(FREEZE)
    cfg = tmp_path / "settings.toml"
    cfg.write_text(
        'policies_dir = "policies"\nstate_dir = "state"\n[[accounts]]\nname = "emu"\n'
        'project_id = "0123456789abcdef0123456789abcdef"\nemulator = true\n'
    )
    return cfg


def test_plan_lists_trigger_changes_and_runs_without_the_cloud(tmp_path: Path) -> None:
    cfg = _policies(tmp_path)
    result = run(
        "--config", str(cfg), "plan", "--from", "2026-12-23T00:00Z", "--until", "2026-12-28T00:00Z",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    changes = [i for i in items if i["kind"] == "trigger" and not i["initial"]]
    assert [(c["at"], c["enable"]) for c in changes] == [
        ("2026-12-23T23:00:00Z", False),
        ("2026-12-26T23:00:00Z", True),
    ]
    runs = [i for i in items if i["kind"] == "run"]
    assert len(runs) == 5
    assert [r["skipped"] for r in runs] == [False, True, True, True, False]
    assert all(r["schedule"] == "nightly" for r in runs)


def test_plan_live_compares_with_the_current_trigger_state(tmp_path: Path) -> None:
    cfg = _policies(tmp_path)
    result = run(
        "--config", str(cfg), "plan", "--from", "2026-12-23T00:00Z", "--until", "2026-12-28T00:00Z",
        "--live",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The bundled demo scenario's cron workflows appear by name; the one a person
    # disabled is listed at the start, and aomd will leave it (manage: owned).
    assert "healthcheck" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "nightly-report" in line]
    assert len(lines) == 1, lines  # left alone all period: no calendar edges listed
    assert "aomd leaves it off (manage: owned)" in lines[0]
    assert [line for line in result.stdout.splitlines() if "healthcheck" in line]


def test_plan_with_a_bad_policy_exits_2_with_file_and_line(tmp_path: Path) -> None:
    cfg = _policies(tmp_path)
    (tmp_path / "policies" / "freeze.yaml").write_text(FREEZE.replace("off_during", "of_during"))
    result = run("--config", str(cfg), "plan")
    assert result.returncode == 2
    assert "freeze.yaml:" in result.stderr


def test_schema_is_json_with_the_policy_sections() -> None:
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"rules", "calendars", "triggers", "schedules"} <= set(schema["properties"])


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("aomd ")


def test_examples_in_the_repo_validate() -> None:
    result = run("validate", "policies")
    assert result.returncode == 0, result.stderr

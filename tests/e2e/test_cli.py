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
    # issue #12: a freeze beating an allow rule, a catch-up run and an override
    assert "freeze beat an allow rule (deny beats allow): wf-cron-cn-etl" in summary
    assert "catch-up runs after the freeze: hourly-report applied" in summary
    assert "overrides: override ov-demo DEMO-1 (workflow wf-cron-logrotate on until" in summary
    assert "deny beats allow of china-batch" in summary


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


def test_plan_with_the_examples_keeps_china_batch_off_in_the_year_end_freeze() -> None:
    """The issue's accident: the CN rule stands before the global freeze, and first-match
    enabled china-batch workflows on 21 December. Every selecting rule counts now."""
    result = run("plan", "--from", "2026-12-21T00:00:00", "--until", "3d", "--json")
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    cn = [i for i in items if i["kind"] == "trigger" and i["workflow_id"] == "<china-batch>"]
    assert cn, items
    assert not any(i["enable"] for i in cn)
    assert cn[0]["rule"] == "freeze-everything-else"
    assert "deny beats allow of china-batch" in cn[0]["reason"]
    backup = [i for i in items if i["schedule"] == "nightly-backup"]
    assert backup
    assert all(i["skipped"] for i in backup)
    assert "resolved by name at run time" not in json.dumps(backup)  # blocked, not resolved


def test_deny_beats_allow_across_two_files(tmp_path: Path) -> None:
    cfg = _policies(tmp_path)
    (tmp_path / "policies" / "a-allow.yaml").write_text(
        "calendars:\n  office:\n    timezone: Europe/Berlin\n"
        "    recurring: [{cron: '0 8 * * *', duration: 10h}]\n"
        "triggers:\n  - name: office-hours\n    select: {names: ['etl-*']}\n"
        "    on_only_during: office\n"
    )
    result = run(
        "--config", str(cfg), "plan", "--from", "2026-12-22T00:00Z", "--until", "2026-12-28T00:00Z",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    etl = [i for i in items if i["workflow_id"] == "<office-hours>"]
    on = [i["at"] for i in etl if i["enable"]]
    # Office hours open on the 22nd and 23rd; the freeze (24th-26th Berlin) holds them off.
    assert on == ["2026-12-22T07:00:00Z", "2026-12-23T07:00:00Z", "2026-12-27T07:00:00Z"]
    checked = run("validate", str(tmp_path / "policies"))
    assert checked.returncode == 0
    assert "rule 'christmas'" in checked.stderr
    assert "rule 'office-hours'" in checked.stderr


def test_examples_say_their_rules_are_meant_to_overlap() -> None:
    """The examples mark their overlapping trigger rules ``overlap_ok: true``: no warning.
    The same file without the marks is warned about (``test_deny_beats_allow_across_two_files``
    and ``test_loader``)."""
    result = run("validate", "policies")
    assert result.returncode == 0, result.stderr
    assert "relied" not in result.stderr
    assert "first match" not in result.stderr


def test_explain_and_status_say_why_rule_by_rule() -> None:
    """Against the default settings' embedded emulator (the demo scenario's workflows)."""
    result = run("explain", "healthcheck", "--at", "2026-12-21T12:00:00", "--json")
    assert result.returncode == 0, result.stderr
    # (the embedded emulator logs its start on stdout too: take the JSON line)
    [doc] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert (doc["workflow_id"], doc["desired"]) == ("wf-cron-healthcheck", False)
    assert doc["summary"] == "OFF: denied by freeze-everything-else"
    [rule] = doc["rules"]
    assert rule["vote"] == "off"
    assert rule["where"].endswith("calendars.example.yaml:67")
    assert "calendar change-freeze active; window 2026-12-18 17:00" in rule["why"]
    assert doc["next_change"] == "2027-01-04T07:00:00Z"  # year-end-freeze ends 08:00 Berlin
    assert doc["next_state"] is True
    text = run("explain", "wf-cron-healthcheck", "--at", "2026-12-21T12:00:00")
    assert "next change: 2027-01-04 07:00:00 UTC -> ON" in text.stdout
    missing = run("explain", "no-such-workflow")
    assert missing.returncode == 2
    assert "no workflow with id or name 'no-such-workflow'" in missing.stderr
    status = run("status", "--workflow", "nightly-report", "--json")
    assert status.returncode == 0, status.stderr
    [row] = [json.loads(line) for line in status.stdout.splitlines() if line.startswith("{")]
    assert row["observed"] is False
    # status judges at the wall clock: inside the examples' windows (the Tuesday-night
    # maintenance, the freezes) the rules want it off anyway; outside them they want it
    # on, and status must say why it stays off
    if row["desired"]:
        assert "aomd leaves it off (manage: owned)" in row["summary"]
    else:
        assert row["summary"].startswith("OFF: "), row["summary"]
    assert row["next_change"] is not None

"""``aomd plan --ics`` parsed back with icalendar, and ``aomd plan --html`` loaded in a
real headless Chromium (Debian's ``chromium``): what it drew is counted by the browser,
and a screenshot is kept as a test artifact (``<pytest tmp>/.../plan.png``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from icalendar import Calendar

from tests.support.processes import aomd_cmd

REPO = Path(__file__).resolve().parents[2]

POLICY = """
calendars:
  freeze:
    timezone: Europe/Berlin
    ranges: [{start: "2026-12-24T00:00:00", end: "2026-12-27T00:00:00"}]
  office:
    timezone: Europe/Berlin
    recurring: [{cron: "0 8 * * *", duration: 10h}]
triggers:
  - name: office-hours
    select: {names: ["etl-*"]}
    on_only_during: office
  - name: christmas
    select: {names: ["*"]}
    off_during: freeze
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    action: {execute: {workflow_name: backup-db}}
    blocked_by: [freeze]
    catch_up: once
    catch_up_window: 2d
overrides:
  - id: hotfix
    calendar: freeze
    state: off
    from: "2026-12-25T09:00:00"
    until: "2026-12-25T12:00:00"
    ticket: CHG-77
    reason: hotfix rollout
"""


def _plan(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    pol = tmp_path / "policies"
    pol.mkdir(exist_ok=True)
    (pol / "p.yaml").write_text(POLICY)
    cfg = tmp_path / "settings.toml"
    cfg.write_text(
        'policies_dir = "policies"\nstate_dir = "state"\n[[accounts]]\nname = "emu"\n'
        'project_id = "0123456789abcdef0123456789abcdef"\nemulator = true\n'
    )
    args = ("--from", "2026-12-22T00:00Z", "--until", "2026-12-30T00:00Z", *extra)
    return subprocess.run(
        aomd_cmd("--config", str(cfg), "plan", *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_plan_ics_parses_back_with_every_kind_of_entry(tmp_path: Path) -> None:
    out = tmp_path / "plan.ics"
    result = _plan(tmp_path, "--ics", str(out))
    assert result.returncode == 0, result.stderr
    cal = Calendar.from_ical(out.read_bytes())
    events = [
        (str(e["summary"]), e.decoded("dtstart"), e.decoded("dtend"), str(e["description"]))
        for e in cal.walk("VEVENT")
    ]
    kinds = {str(e["categories"].cats[0]) for e in cal.walk("VEVENT")}
    assert kinds == {"off", "calendar", "override", "run", "skip", "catch-up"}
    freeze = [e for e in events if e[0] == "calendar freeze active"]
    # the override lifts the freeze 09:00-12:00 UTC on the 25th: two windows
    assert [(s.isoformat(), t.isoformat()) for _, s, t, _ in freeze] == [
        ("2026-12-23T23:00:00+00:00", "2026-12-25T09:00:00+00:00"),
        ("2026-12-25T12:00:00+00:00", "2026-12-26T23:00:00+00:00"),
    ]
    assert len([e for e in events if e[0] == "calendar office active"]) == 8
    [override] = [e for e in events if e[0] == "override hotfix"]
    assert "CHG-77" in override[3]
    assert "hotfix rollout" in override[3]
    etl_off = [e for e in events if e[0] == "etl-* trigger off"]
    assert any("deny beats allow of office-hours" in e[3] for e in etl_off)
    skipped = [e for e in events if e[0] == "skip: nightly"]
    assert skipped
    assert all("blocked by calendar 'freeze'" in e[3] for e in skipped)
    caught = [e[1].isoformat() for e in events if e[0] == "catch-up: nightly"]
    # when the override lifts the freeze, and when the freeze ends
    assert caught == ["2026-12-25T09:00:00+00:00", "2026-12-26T23:00:00+00:00"]
    assert len({str(e["uid"]) for e in cal.walk("VEVENT")}) == len(events)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (as ``.ci/run`` does)."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        found = shutil.which("chromium")
    assert found is not None, "chromium is required: apt-get install chromium"
    return found


def _browser(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--window-size=1400,420", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )  # fmt: skip


def test_plan_html_is_drawn_by_a_real_browser(tmp_path: Path, chromium: str) -> None:
    page = tmp_path / "plan.html"
    result = _plan(tmp_path, "--html", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # self-contained
    dom = _browser(chromium, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-drawn="([^"]*)"', dom.stdout)
    assert found, dom.stdout[-2000:]
    drawn = json.loads(unescape(found.group(1)))
    # every kind of band and run mark has a rendered size on the page
    assert set(drawn) == {"on", "off", "calendar", "override", "run", "skip", "catch-up"}, drawn
    assert drawn["calendar"] == 2 + 8  # the freeze split by the override, 8 office days
    assert drawn["catch-up"] == 2
    assert "<title>off 2026-12-23 23:00" in text  # hover text with the reason
    assert "deny beats allow of office-hours" in text
    shot = tmp_path / "plan.png"
    taken = _browser(chromium, f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1400  # width from the PNG header
    assert len(data) > 10_000  # not a blank page
    print(f"screenshot: {shot}")

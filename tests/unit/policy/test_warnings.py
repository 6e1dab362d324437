"""Valid but almost certainly unintended policies are reported, not silent (issue #15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.policy.loader import load_policy_paths
from daemon.policy.validate import validate_paths

EMPTY_ICS = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nEND:VCALENDAR\n"
ONE_EVENT = (
    "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\nUID:1\n"
    "DTSTART:20261224T000000Z\nDTEND:20261225T000000Z\nSUMMARY:Freeze\nEND:VEVENT\n"
    "END:VCALENDAR\n"
)


def test_an_empty_directory_and_ignored_files_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "rules.json").write_text("{}")
    (tmp_path / ".aomd-policy.schema.json").write_text("{}")  # the editor schema: hidden, fine
    warnings = load_policy_paths([tmp_path]).warnings
    assert warnings == (
        f"{tmp_path}: no policy files (*.yaml, *.yml, *.toml): aomd will act on no execution, "
        "trigger or schedule",
        f"{tmp_path / 'rules.json'}: ignored: policy files end in .yaml, .yml or .toml (rename "
        "it, or move it out of the policies directory)",
    )


def test_empty_ics_notify_false_and_no_matching_summary(tmp_path: Path) -> None:
    (tmp_path / "empty.ics").write_text(EMPTY_ICS)
    (tmp_path / "one.ics").write_text(ONE_EVENT)
    (tmp_path / "p.yaml").write_text(
        """
rules:
  - {name: tell, action: notify, notify: false}
  - {name: fine, action: notify}
calendars:
  empty: {ics: empty.ics}
  other: {ics: {path: one.ics, summary: "Maint*"}}
  good: {ics: {path: one.ics, summary: "Free*"}}
"""
    )
    warnings = load_policy_paths([tmp_path]).warnings
    assert len(warnings) == 3, warnings
    assert "rules 'tell': action notify with notify: false never tells anyone" in warnings[0]
    assert warnings[1] == (
        f"{tmp_path / 'empty.ics'}: calendar 'empty': the iCalendar has no VEVENT; it will "
        "never be active"
    )
    assert "calendar 'other': no VEVENT has a SUMMARY matching 'Maint*'" in warnings[2]


def test_validate_prints_warnings_and_still_says_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text("rules: [{name: tell, action: notify, notify: false}]\n")
    assert validate_paths([tmp_path]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 1 rule, 0 calendars, 0 trigger rules, 0 schedules\n"
    assert err.startswith("warning: ")
    assert "never tells anyone" in err


def test_the_example_policies_have_no_warnings() -> None:
    root = Path(__file__).resolve().parents[3] / "policies"
    assert load_policy_paths([root]).warnings == ()

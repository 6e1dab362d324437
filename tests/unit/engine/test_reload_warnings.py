"""The daemon tells about usable-but-suspicious policy input (issue #18): a skipped bad
.ics event is a ``policy_warning`` event at start and after every reload, and a reload
to a hostile file keeps the last good policy."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from daemon.engine.reload import PolicyRef

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:good\r\nDTSTART;VALUE=DATE:20260704\r\nDTEND;VALUE=DATE:20260704\r\n"
    "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:bad\r\nSUMMARY:No start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
POLICY = "calendars:\n  hol:\n    ics: {path: h.ics, strict: false}\n"


def test_skipped_events_are_logged_at_start_and_reload(tmp_path: Path) -> None:
    (tmp_path / "h.ics").write_text(ICS)
    (tmp_path / "p.yaml").write_text(POLICY)
    ref = PolicyRef(tmp_path)
    with capture_logs() as logs:
        ref.load_initial()
        assert ref.reload(reason="test")
    warnings = [e for e in logs if e["event"] == "policy_warning"]
    assert len(warnings) == 2
    assert "p.yaml:2: calendar 'hol': ics.path" in warnings[0]["warning"]
    assert "skipped line 9 (UID bad, SUMMARY 'No start'): no DTSTART" in warnings[0]["warning"]
    assert warnings[0]["log_level"] == "warning"


def test_reload_to_an_alias_bomb_keeps_the_last_good_policy(tmp_path: Path) -> None:
    (tmp_path / "h.ics").write_text(ICS)
    (tmp_path / "p.yaml").write_text(POLICY)
    ref = PolicyRef(tmp_path)
    ref.load_initial()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)
    )
    (tmp_path / "p.yaml").write_text(bomb)
    with capture_logs() as logs:
        assert not ref.reload(reason="test")
    (rejected,) = [e for e in logs if e["event"] == "policy_rejected"]
    assert "more than 200,000 values" in rejected["error"]
    assert ref.version == 1
    assert "hol" in ref.current.built_calendars

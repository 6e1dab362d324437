"""``aomd history``: table and JSON lines from the journal file the settings name."""

from __future__ import annotations

import asyncio
import io
import json

from daemon.cli import main
from daemon.cli.cmd_history import print_history
from daemon.journal import SqliteJournal
from daemon.settings import Settings


async def _fill(settings: Settings, intent, t0) -> None:
    async with SqliteJournal(settings.journal_path()) as journal:
        await journal.begin(intent("e1", "n1", 1), t0(0))
        await journal.finish(
            intent("e1", "n1", 1).key, "applied", request_id="req-9", error=None, at=t0(1)
        )
        await journal.begin(intent("e2", "n2", 1, reason="pause > 10m"), t0(5))
        await journal.finish(
            intent("e2", "n2", 1).key, "failed", request_id=None, error="HTTP 503", at=t0(6)
        )
        await journal.begin(intent("e1", None, 1, kind="terminate", dry_run=True), t0(9))


async def test_missing_journal_is_explained_not_an_error(tmp_path, t0) -> None:
    out = io.StringIO()
    settings = Settings(state_dir=tmp_path / "nowhere")
    assert await print_history(settings, since=t0(0), workflow=None, as_json=False, out=out) == 0
    assert "no journal at" in out.getvalue()
    assert not (tmp_path / "nowhere").exists()  # reading never creates the state dir


async def test_table_lists_what_and_why(tmp_path, intent, t0) -> None:
    settings = Settings(state_dir=tmp_path)
    await _fill(settings, intent, t0)
    out = io.StringIO()
    assert await print_history(settings, since=t0(0), workflow=None, as_json=False, out=out) == 0
    header, *lines = out.getvalue().splitlines()
    assert header.split() == [
        "time", "workflow", "execution", "node", "action", "attempt", "rule", "outcome", "reason"
    ]  # fmt: skip
    assert len(lines) == 3
    assert lines[0].startswith("2026-11-26 10:00:00Z  wf-e1")
    assert "applied" in lines[0]
    assert "pause > 10m [HTTP 503]" in lines[1]
    assert "pending (dry-run)" in lines[2]
    assert "terminate" in lines[2]

    out = io.StringIO()
    await print_history(settings, since=t0(0), workflow="wf-e2", as_json=False, out=out)
    assert len(out.getvalue().splitlines()) == 2

    out = io.StringIO()
    await print_history(settings, since=t0(30), workflow=None, as_json=False, out=out)
    assert out.getvalue().startswith("no actions since")


async def test_json_lines(tmp_path, intent, t0) -> None:
    settings = Settings(state_dir=tmp_path)
    await _fill(settings, intent, t0)
    out = io.StringIO()
    await print_history(settings, since=t0(1), workflow=None, as_json=True, out=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["execution_id"] for r in rows] == ["e2", "e1"]
    assert rows[0]["outcome"] == "failed"
    assert rows[0]["error"] == "HTTP 503"
    assert rows[0]["at"] == t0(5).isoformat()
    assert rows[1]["action"] == "terminate"
    assert rows[1]["dry_run"] is True
    assert rows[1]["finished_at"] is None


async def test_cli_history_command(tmp_path, intent, t0, capsys) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    await _fill(settings, intent, t0)
    config = tmp_path / "settings.toml"
    config.write_text(f"state_dir = {str(tmp_path / 'state')!r}\n", encoding="utf-8")
    capsys.readouterr()  # drop the log lines of _fill
    argv = ["--config", str(config), "history", "--since", "2026-11-26T09:00", "--json"]
    code = await asyncio.to_thread(main, argv)  # the CLI runs its own event loop
    assert code == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


async def test_folded_trigger_toggles_show_their_count_and_span(tmp_path, intent, t0) -> None:
    settings = Settings(state_dir=tmp_path)
    async with SqliteJournal(settings.journal_path()) as journal:
        for i in range(3):
            it = intent(None, None, 1, kind="trigger_disable", key=f"trigger/t/wf-a/d/{i}",
                        workflow_id="wf-a", reason="calendar freeze active")  # fmt: skip
            await journal.begin(it, t0(4 * i))
            await journal.finish(it.key, "applied", request_id=None, error=None, at=t0(4 * i))
        assert await journal.compact(t0(60)) == 2
    out = io.StringIO()
    await print_history(settings, since=t0(0), workflow="wf-a", as_json=False, out=out)
    [_, row] = out.getvalue().splitlines()
    assert row.endswith(
        "calendar freeze active (x3 from 2026-11-26 10:00:00Z to 2026-11-26 10:08:00Z)"
    )
    out = io.StringIO()
    await print_history(settings, since=t0(0), workflow="wf-a", as_json=True, out=out)
    [line] = out.getvalue().splitlines()
    assert (json.loads(line)["repeats"], json.loads(line)["first_at"]) == (
        3,
        "2026-11-26T10:00:00+00:00",
    )

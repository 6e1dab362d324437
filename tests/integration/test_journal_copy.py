"""``aomd journal-copy`` moves a replica's SQLite journal into the shared PostgreSQL one
with nothing lost: the same history, claimed triggers, first sightings and ticks, read
back through the same API. A second copy into the now non-empty journal is refused."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from daemon.journal import PostgresJournal, SqliteJournal
from daemon.kernel.writes import WriteIntent
from tests.support.clocks import T0
from tests.support.postgres import PostgresServer
from tests.support.processes import aomd_cmd


async def _fill(path: Path) -> SqliteJournal:
    j = SqliteJournal(path)
    await j.open()
    for n in range(5):
        intent = WriteIntent(
            key=f"exec/e{n}/n/restart/1",
            kind="restart",
            workflow_id=f"wf{n % 2}",
            execution_id=f"e{n}",
            node_id="n",
            rule="retry",
            reason="node failed",
            observed=f"fp{n}",
            dry_run=n == 3,
        )
        await j.begin(intent, T0 + timedelta(minutes=n))
        if n != 4:  # one left pending, as a kill leaves it
            await j.finish(
                intent.key, "applied", request_id=f"r{n}", error=None, at=T0 + timedelta(hours=1)
            )
    await j.set_trigger_owned("wf-cron", True, reason="freeze", at=T0)
    await j.saw("e4", "n", T0)
    await j.set_last_tick("schedules/prod", T0 + timedelta(minutes=7))
    return j


async def test_journal_copy_moves_every_row_and_refuses_a_second_time(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    source = tmp_path / "state" / "journal.sqlite3"
    sqlite = await _fill(source)
    url = postgres_server.new_database()
    cfg = tmp_path / "settings.toml"
    cfg.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[journal]\nurl = "{url}"\n'
        '[[accounts]]\nname = "x"\nproject_id = "' + "p" * 32 + '"\nemulator = true\n'
    )
    done = subprocess.run(
        aomd_cmd("--config", str(cfg), "journal-copy"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "5 intents, 1 owned_triggers, 1 sightings" in done.stdout

    pg = PostgresJournal(url)
    await pg.open()
    try:
        assert await pg.history() == await sqlite.history()
        assert await pg.owned_triggers() == {"wf-cron"}
        assert await pg.facts("e4") == await sqlite.facts("e4")
        assert await pg.last_tick("schedules/prod") == T0 + timedelta(minutes=7)
        assert [r.key for r in await pg.unresolved()] == ["exec/e4/n/restart/1"]
    finally:
        await pg.close()
        await sqlite.close()

    again = subprocess.run(
        aomd_cmd("--config", str(cfg), "journal-copy"), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert "already holds intents" in again.stderr

"""What only the SQLite store can get wrong: files, schema versions, crashes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.journal import SqliteJournal
from daemon.journal.migrations import LATEST, MIGRATIONS
from daemon.kernel.errors import JournalError
from daemon.kernel.outcomes import PENDING


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_migrates_an_empty_file_to_the_latest_schema(tmp_path, intent, t0) -> None:
    path = tmp_path / "journal.sqlite3"
    path.touch()
    async with SqliteJournal(path) as journal:
        assert await journal.begin(intent(), t0(0)) is None
    assert _pragma(path, "user_version") == LATEST
    assert _pragma(path, "journal_mode") == "wal"
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"intents", "owned_triggers", "sightings"} <= tables


async def test_creates_missing_directories_and_reopen_keeps_everything(
    tmp_path, intent, t0
) -> None:
    path = tmp_path / "a" / "b" / "journal.sqlite3"
    async with SqliteJournal(path) as journal:
        await journal.begin(intent(), t0(0))
        await journal.finish(intent().key, "applied", request_id="r1", error=None, at=t0(1))
        await journal.set_trigger_owned("wf-a", True, reason="freeze", at=t0(0))
        await journal.saw("e1", "n1", t0(0))
        before = (await journal.history(), await journal.facts("e1"))
    async with SqliteJournal(path) as journal:
        assert (await journal.history(), await journal.facts("e1")) == before
        assert await journal.owned_triggers() == {"wf-a"}
        assert await journal.begin(intent(), t0(2)) == "applied"


async def test_a_version_2_journal_gets_ownership_per_account(tmp_path, t0) -> None:
    """Migration 3: owned triggers from before accounts (account '') count for every
    account until one of them writes that workflow's ownership; afterwards two accounts
    with the same workflow id never collide."""
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[:2]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO owned_triggers (workflow_id, reason, owned_at) VALUES (?, ?, ?)",
            ("wf-old", "freeze", "2026-01-01T00:00:00.000000+00:00"),
        )
    async with SqliteJournal(path) as journal:
        assert _pragma(path, "user_version") == LATEST
        assert await journal.owned_triggers("prod-cn") == {"wf-old"}
        assert await journal.owned_triggers("prod-eu") == {"wf-old"}
        await journal.set_trigger_owned(
            "wf-old", True, reason="freeze", at=t0(0), account="prod-cn"
        )
        assert await journal.owned_triggers("prod-cn") == {"wf-old"}
        assert await journal.owned_triggers("prod-eu") == set()  # claimed by prod-cn now
        await journal.set_trigger_owned("wf-old", True, reason="x", at=t0(0), account="prod-eu")
        await journal.set_trigger_owned("wf-old", False, reason="end", at=t0(1), account="prod-cn")
        assert await journal.owned_triggers("prod-cn") == set()
        assert await journal.owned_triggers("prod-eu") == {"wf-old"}


async def test_a_journal_from_a_newer_aomd_is_refused(tmp_path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    journal = SqliteJournal(path)
    with pytest.raises(JournalError, match=r"newer aomd") as info:
        await journal.open()
    assert str(path) in str(info.value)
    assert _pragma(path, "user_version") == LATEST + 1  # left untouched
    with pytest.raises(JournalError, match="newer aomd"):
        await SqliteJournal(path, readonly=True).open()


async def test_sqlite_failures_become_journal_errors_naming_the_file(tmp_path) -> None:
    garbage = tmp_path / "journal.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="not a database") as info:
        await SqliteJournal(garbage).open()
    assert str(garbage) in str(info.value)
    with pytest.raises(JournalError):
        await SqliteJournal(tmp_path).open()  # a directory


async def test_using_a_closed_journal_is_an_error(tmp_path, intent, t0) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    with pytest.raises(JournalError, match="not open"):
        await journal.begin(intent(), t0(0))
    await journal.open()
    await journal.close()
    with pytest.raises(JournalError, match="not open"):
        await journal.facts("e1")
    assert "closed" in repr(journal)


async def test_readonly_reads_alongside_a_writer_and_never_writes(tmp_path, intent, t0) -> None:
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as writer:
        await writer.begin(intent(), t0(0))
        async with SqliteJournal(path, readonly=True) as reader:
            assert [r.key for r in await reader.history()] == [intent().key]
            await writer.begin(intent(attempt=2), t0(1))
            assert len(await reader.history()) == 2  # sees the writer's new commit (WAL)
            with pytest.raises(JournalError, match="readonly"):
                await reader.begin(intent(attempt=3), t0(2))
    # and with no writer running (WAL files checkpointed away)
    async with SqliteJournal(path, readonly=True) as reader:
        assert len(await reader.history()) == 2


async def test_readonly_on_missing_or_empty_files(tmp_path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        await SqliteJournal(tmp_path / "missing.sqlite3", readonly=True).open()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    async with SqliteJournal(empty, readonly=True) as reader:
        assert await reader.history() == []
    assert empty.stat().st_size == 0


_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import UTC, datetime
    from daemon.engine.executor import WriteIntent
    from daemon.journal import SqliteJournal

    async def main() -> None:
        journal = SqliteJournal(sys.argv[1])
        await journal.open()
        intent = WriteIntent(key="exec/e1/n1/restart/1", kind="restart", workflow_id="wf",
                             execution_id="e1", node_id="n1", observed="fp")
        result = await journal.begin(intent, datetime.now(UTC))
        print("BEGUN", result, flush=True)
        time.sleep(60)  # the API call would happen here; we are killed first

    asyncio.run(main())
    """
)


async def test_an_intent_survives_sigkill_right_after_begin(tmp_path, intent) -> None:
    path = tmp_path / "journal.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:  # structlog may print its own lines first
            if line.startswith("BEGUN"):
                assert line.split() == ["BEGUN", "None"]
                break
        else:
            pytest.fail("child exited before begin() returned")
        assert Path(f"{path}-wal").exists()  # the commit is still only in the WAL
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    async with SqliteJournal(path) as journal:
        [write] = (await journal.facts("e1")).writes
        assert (write.key, write.outcome, write.observed) == ("exec/e1/n1/restart/1", PENDING, "fp")
        # the executor now resolves by observation instead of sending again
        assert await journal.begin(intent("e1", "n1", 1), write.at) == PENDING


def _fill(path: Path, rows: int, created: str) -> None:
    """Bulk rows straight into the file (one transaction; the daemon's path commits one
    fsync per write, far too slow to fill megabytes in a unit test)."""
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO intents (key, kind, workflow_id, execution_id, node_id, attempt, rule,"
            " reason, observed, dry_run, outcome, request_id, error, created_at, finished_at,"
            " tries) VALUES (?, 'restart', ?, ?, 'n', 1, 'r', ?, '', 0, 'applied', NULL, NULL,"
            " ?, ?, 1)",
            [
                (f"exec/e{i}/n/restart/1", f"wf-{i % 50}", f"e{i}", "x" * 200, created, created)
                for i in range(rows)
            ],
        )


async def test_pruned_space_goes_back_to_the_file_system(tmp_path, t0) -> None:
    """Incremental auto-vacuum: after retention deletes rows, ``reclaim`` shrinks the
    file instead of leaving it at its high-water mark for ever."""
    path = tmp_path / "journal.sqlite3"
    async with SqliteJournal(path) as journal:
        assert _pragma(path, "auto_vacuum") == 2  # incremental, from the start
        _fill(path, 20_000, t0(0).isoformat(timespec="microseconds"))
        await journal.reclaim()
        full = journal.size()
        assert full > 4_000_000
        assert await journal.prune(t0(60)) == 20_000
        freed = await journal.reclaim()
        assert freed > 0.8 * full
        assert journal.size() < 0.1 * full
    assert path.stat().st_size < 0.1 * full


async def test_a_schema_2_journal_is_migrated_and_switched_to_incremental_vacuum(
    tmp_path, t0
) -> None:
    from daemon.journal.migrations import MIGRATIONS

    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:  # as an aomd of schema 2 left it
        for version, steps in enumerate(MIGRATIONS[:2], start=1):
            for statement in steps:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    _fill(path, 10, t0(0).isoformat(timespec="microseconds"))
    assert _pragma(path, "auto_vacuum") == 0
    async with SqliteJournal(path) as journal:
        rows = await journal.history()
    assert [(r.repeats, r.first_at) for r in rows] == [(1, None)] * 10
    assert _pragma(path, "user_version") == LATEST == 5
    assert _pragma(path, "auto_vacuum") == 2

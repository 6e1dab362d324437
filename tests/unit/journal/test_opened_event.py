"""``journal_opened`` says ``migrated_from`` only when a migration ran (issue #15): a new
file is ``created``, a current one neither, an old one names the version it came from."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from daemon.journal import SqliteJournal
from daemon.journal.migrations import LATEST, MIGRATIONS


async def _opened(path: Path) -> dict[str, Any]:
    with capture_logs() as logs:
        async with SqliteJournal(path):
            pass
    (event,) = [e for e in logs if e["event"] == "journal_opened"]
    return event


async def test_created_then_current_then_migrated(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = await _opened(path)
    assert first["created"] is True
    assert "migrated_from" not in first
    again = await _opened(path)
    assert "created" not in again
    assert "migrated_from" not in again
    assert again["schema"] == LATEST

    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    migrated = await _opened(old)
    assert migrated["migrated_from"] == 1
    assert migrated["schema"] == LATEST

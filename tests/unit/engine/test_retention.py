"""Journal upkeep keeps the file bounded: a calendar toggling every 4 minutes on 20
workflows for six days, with two days of retention, leaves a file that stops growing."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from daemon.engine.retention import upkeep
from daemon.journal import SqliteJournal
from tests.support.clocks import T0

WORKFLOWS = 20
TOGGLE = timedelta(minutes=4)


def _day_of_toggles(path: Path, day: int) -> int:
    """One day of trigger changes, bulk-inserted as the executor leaves them (finished)."""
    start = T0 + timedelta(days=day)
    rows = []
    for step in range(int(timedelta(days=1) / TOGGLE)):
        at = (start + step * TOGGLE).isoformat(timespec="microseconds")
        action = "trigger_disable" if step % 2 == 0 else "trigger_enable"
        for w in range(WORKFLOWS):
            key = f"trigger/t/wf-{w}/{action}/{start + step * TOGGLE:%Y%m%dT%H%M%S}"
            rows.append((key, action, f"wf-{w}", at, at))
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO intents (key, kind, workflow_id, execution_id, node_id, attempt, rule,"
            " reason, observed, dry_run, outcome, request_id, error, created_at, finished_at,"
            " tries) VALUES (?, ?, ?, NULL, NULL, 1, 'freeze-all',"
            " 'calendar change-freeze active', 'enabled', 0, 'applied',"
            " 'c0ffee0123456789c0ffee0123456789', NULL, ?, ?, 1)",
            rows,
        )
    return len(rows)


async def test_days_of_toggles_with_upkeep_leave_a_flat_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    sizes = []
    async with SqliteJournal(path) as journal:
        since = None
        for day in range(6):
            written = _day_of_toggles(path, day)
            now = T0 + timedelta(days=day + 1)
            _, folded, _ = await upkeep(
                journal, now, days=2, compact_after=timedelta(hours=6), since=since
            )
            since = now - timedelta(days=2)
            recent = int(timedelta(hours=6) / TOGGLE) * WORKFLOWS  # not folded yet
            assert folded >= written - recent - 2 * 2 * WORKFLOWS
            sizes.append(journal.size())
            rows = await journal.history()
            # per workflow: the last 6 h as written, and one row per action and UTC day
            # for the days retention keeps
            assert len(rows) <= recent + WORKFLOWS * 2 * 4
    # 7,200 rows a day written; after day 3 retention and compaction hold it flat
    assert max(sizes[3:]) <= 1.05 * min(sizes[3:])
    assert max(sizes) < 1_600_000  # vs ~4 MB a day written, ~24 MB kept without upkeep

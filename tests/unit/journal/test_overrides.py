"""Overrides in the journal: stored with who/ticket/reason, ended, shown in history,
the same in SQLite and in memory (``daemon.journal.core``)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.journal.store import Journal
from daemon.kernel.errors import JournalError
from daemon.kernel.overrides import Override

T = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)


BASE = Override(
    id="ov-1",
    target_kind="calendar",
    target="year-end-freeze",
    state="off",
    start=T,
    until=T + timedelta(hours=4),
    ticket="CHG-123",
    reason="hotfix 4.2.1",
    who="alice",
)


def _ov(**kw: Any) -> Override:
    return dataclasses.replace(BASE, **kw)


async def test_add_list_end_and_history(journal: Journal) -> None:
    await journal.add_override(_ov(), T)
    [found] = await journal.overrides()
    assert found == _ov()
    assert found.active_at(T + timedelta(hours=1))
    assert not found.active_at(T + timedelta(hours=4))  # expires by itself
    with pytest.raises(JournalError, match="exists already"):
        await journal.add_override(_ov(), T)
    ended = await journal.end_override("ov-1", "bob", T + timedelta(hours=1))
    assert ended is not None
    assert (ended.ended_by, ended.end) == ("bob", T + timedelta(hours=1))
    assert not (await journal.overrides())[0].active_at(T + timedelta(hours=2))
    assert await journal.end_override("ov-none", "bob", T) is None
    rows = await journal.history()
    assert [(r.key, r.kind, r.rule, r.workflow_id) for r in rows] == [
        ("override/ov-1/add", "override_add", "CHG-123", "calendar:year-end-freeze"),
        ("override/ov-1/end", "override_end", "CHG-123", "calendar:year-end-freeze"),
    ]
    assert "by alice): hotfix 4.2.1" in rows[0].reason
    assert rows[1].reason.startswith("ended by bob: ")

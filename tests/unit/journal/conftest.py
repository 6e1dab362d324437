"""One journal fixture, three stores: every contract test runs on SQLite, in memory and
on a real PostgreSQL server (started by ``tests.support.postgres``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.journal import Journal, MemoryJournal, PostgresJournal, SqliteJournal
from daemon.kernel.writes import WriteIntent
from tests.support.clocks import T0
from tests.support.postgres import PostgresServer

IntentFactory = Callable[..., WriteIntent]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def t0() -> Callable[[float], datetime]:
    """``t0(n)``: n minutes after a fixed instant (tests never read the clock)."""
    return minutes


@pytest.fixture
def intent() -> IntentFactory:
    """``intent(execution, node, attempt, **overrides)`` with the engine's key format."""

    def make(
        execution: str = "e1", node: str | None = "n1", attempt: int = 1, **kw: Any
    ) -> WriteIntent:
        kind = kw.pop("kind", "restart")
        fields: dict[str, Any] = {
            "key": f"exec/{execution}/{node or '-'}/{kind}/{attempt}",
            "kind": kind,
            "workflow_id": f"wf-{execution}",
            "execution_id": execution,
            "node_id": node,
            "attempt": attempt,
            "rule": "retry-failed",
            "reason": "node failed",
            "observed": f"fp-{attempt}",
        }
        fields.update(kw)
        return WriteIntent(**fields)

    return make


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    store: Journal
    if request.param == "sqlite":
        store = SqliteJournal(tmp_path / "state" / "journal.sqlite3")
    elif request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        store = PostgresJournal(server.new_database())
    else:
        store = MemoryJournal()
    await store.open()
    yield store
    await store.close()

"""The journal: aomd's memory of what it meant to do and what came of it.

``SqliteJournal`` is the embedded default; ``PostgresJournal`` (``journal.url``) lets
replicas share one journal; ``MemoryJournal`` is for tests and demos. All three have the
same semantics: one shared implementation in ``core``, one contract test suite.
"""

from __future__ import annotations

from daemon.journal.memory import MemoryJournal
from daemon.journal.postgres import PostgresJournal
from daemon.journal.sqlite import SqliteJournal
from daemon.journal.store import HistoryRow, Journal
from daemon.kernel.outcomes import PENDING

__all__ = [
    "PENDING",
    "HistoryRow",
    "Journal",
    "MemoryJournal",
    "PostgresJournal",
    "SqliteJournal",
]


def _conforms(
    sqlite: SqliteJournal, memory: MemoryJournal, postgres: PostgresJournal
) -> tuple[Journal, Journal, Journal]:
    """Never called: makes ``mypy --strict`` prove every store implements ``Journal``."""
    return sqlite, memory, postgres

"""The journal: aomd's memory of what it meant to do and what came of it.

``SqliteJournal`` is the store the daemon uses; ``MemoryJournal`` has the same semantics
(one shared implementation in ``core``, one contract test suite) for tests and demos.
"""

from __future__ import annotations

from daemon.journal.memory import MemoryJournal
from daemon.journal.sqlite import SqliteJournal
from daemon.journal.store import HistoryRow, Journal
from daemon.kernel.outcomes import PENDING

__all__ = ["PENDING", "HistoryRow", "Journal", "MemoryJournal", "SqliteJournal"]


def _conforms(sqlite: SqliteJournal, memory: MemoryJournal) -> tuple[Journal, Journal]:
    """Never called: makes ``mypy --strict`` prove both stores implement ``Journal``."""
    return sqlite, memory

"""In-memory journal: the ``SqliteJournal`` semantics without a file.

For unit tests and demo fast paths. All rules live in ``daemon.journal.core``; this
module only stores rows in dicts. Every call runs to completion without awaiting, so
each ``Tx`` is atomic with respect to other tasks. ``open()`` is optional here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from daemon.journal.core import JournalBase, Tx, order
from daemon.journal.store import HistoryRow
from daemon.kernel.keys import STREAK_HOLDS
from daemon.kernel.outcomes import UNRESOLVED

T = TypeVar("T")


class _MemoryTx:
    def __init__(self) -> None:
        self.intents: dict[str, HistoryRow] = {}
        self.sightings: dict[tuple[str, str], datetime] = {}
        self.owned_by_us: dict[tuple[str, str], tuple[str, datetime]] = {}
        """(account, workflow) -> (reason, at); account '' for rows from before accounts."""
        self.ticks: dict[str, datetime] = {}
        self.override_docs: dict[str, str] = {}

    def get_intent(self, key: str) -> HistoryRow | None:
        return self.intents.get(key)

    def put_intent(self, row: HistoryRow) -> None:
        self.intents[row.key] = row

    def intents_of(self, execution_id: str) -> list[HistoryRow]:
        return [r for r in self.intents.values() if r.execution_id == execution_id]

    def sightings_of(self, execution_id: str) -> dict[str, datetime]:
        return {n: at for (e, n), at in self.sightings.items() if e == execution_id}

    def add_sighting(self, execution_id: str, node_id: str, at: datetime) -> None:
        self.sightings.setdefault((execution_id, node_id), at)

    def remove_sighting(self, execution_id: str, node_id: str) -> None:
        self.sightings.pop((execution_id, node_id), None)

    def owned(self, account: str | None) -> set[str]:
        return {w for a, w in self.owned_by_us if account is None or a in (account, "")}

    def owned_at(self, account: str, workflow_id: str) -> datetime | None:
        found = self.owned_by_us.get((account, workflow_id)) or self.owned_by_us.get(
            ("", workflow_id)
        )
        return None if found is None else found[1]

    def set_owned(self, account: str, workflow_id: str, reason: str, at: datetime) -> None:
        if account:
            self.unset_owned("", workflow_id)
        self.owned_by_us[(account, workflow_id)] = (reason, at)

    def unset_owned(self, account: str, workflow_id: str) -> None:
        self.owned_by_us.pop((account, workflow_id), None)
        self.owned_by_us.pop(("", workflow_id), None)

    def select_history(
        self, since: datetime | None, workflow_id: str | None, limit: int | None
    ) -> list[HistoryRow]:
        rows = sorted(
            (
                r
                for r in self.intents.values()
                if (since is None or r.at >= since)
                and (workflow_id is None or r.workflow_id == workflow_id)
            ),
            key=order,
        )
        return rows if limit is None else rows[max(0, len(rows) - limit) :]

    def unresolved(self) -> list[HistoryRow]:
        return [r for r in self.intents.values() if r.outcome in UNRESOLVED]

    def get_tick(self, scope: str) -> datetime | None:
        return self.ticks.get(scope)

    def set_tick(self, scope: str, at: datetime) -> None:
        self.ticks[scope] = at

    def get_overrides(self) -> list[str]:
        return list(self.override_docs.values())

    def put_override(self, override_id: str, doc: str, until: datetime) -> None:
        self.override_docs[override_id] = doc

    def compactable(
        self, kinds: frozenset[str], since: datetime | None, cutoff: datetime
    ) -> list[HistoryRow]:
        return [
            r
            for r in self.intents.values()
            if r.kind in kinds
            and r.finished_at is not None
            and r.at < cutoff
            and (since is None or r.at >= since)
        ]

    def delete_intents(self, keys: list[str]) -> None:
        for key in keys:
            self.intents.pop(key, None)

    def forget_execution(self, execution_id: str) -> None:
        for sighting in [k for k in self.sightings if k[0] == execution_id]:
            del self.sightings[sighting]

    def prune(self, cutoff: datetime) -> int:
        old = [
            k
            for k, r in self.intents.items()
            # as the SQLite store, which prunes by its creation index
            if r.finished_at is not None and r.finished_at < cutoff and r.at < cutoff
        ]
        stale = [
            k
            for k, at in self.sightings.items()
            if at < cutoff and not k[0].startswith(f"{STREAK_HOLDS}/")
        ]
        for key in old:
            del self.intents[key]
        for sighting in stale:
            del self.sightings[sighting]
        return len(old) + len(stale)


class MemoryJournal(JournalBase):
    """``Journal`` kept in process memory; lost on exit (by design)."""

    def __init__(self) -> None:
        self._tx = _MemoryTx()

    async def _run(self, op: Callable[[Tx], T]) -> T:
        return op(self._tx)

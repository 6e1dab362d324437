"""The ledger: every request the emulator received, in order, with the change it caused.

Tests and benchmarks assert on it ("exactly one restart of node X was applied"), so an
entry is appended for every non-admin request, including those answered by a fault and
those whose response was deliberately lost. Cron fires are entries too (method ``CRON``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

AuthResult = Literal["token", "aksk", "none", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    seq: int
    time: datetime
    """Emulated time at which the request was answered."""
    method: str
    path: str
    query: dict[str, str]
    auth: AuthResult
    status: int | None
    """HTTP status sent; None when no response was sent (reset, hang, lost, cron)."""
    request_id: str
    change: dict[str, Any] | None = None
    """The state change applied, e.g. ``{"kind": "operation", ...}``; None for reads."""
    fault: str | None = None
    """The injected fault kind that shaped this response, if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "auth": self.auth,
            "status": self.status,
            "request_id": self.request_id,
            "change": self.change,
            "fault": self.fault,
        }


class Ledger:
    """Append-only list of entries with a sequence number starting at 1.

    ``max_entries`` bounds memory in long benchmarks: past it, the oldest half is dropped
    (sequence numbers keep counting, ``since`` still works for what is left).
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.entries: list[LedgerEntry] = []
        self.max_entries = max_entries
        self.dropped = 0
        """How many of the oldest entries were discarded to respect ``max_entries``."""

    def append(
        self,
        *,
        time: datetime,
        method: str,
        path: str,
        query: dict[str, str],
        auth: AuthResult,
        status: int | None,
        request_id: str,
        change: dict[str, Any] | None = None,
        fault: str | None = None,
    ) -> LedgerEntry:
        entry = LedgerEntry(
            seq=self.last_seq + 1,
            time=time,
            method=method,
            path=path,
            query=query,
            auth=auth,
            status=status,
            request_id=request_id,
            change=change,
            fault=fault,
        )
        self.entries.append(entry)
        if self.max_entries is not None and len(self.entries) > self.max_entries:
            cut = len(self.entries) - self.max_entries // 2
            del self.entries[:cut]
            self.dropped += cut
        return entry

    @property
    def last_seq(self) -> int:
        return self.dropped + len(self.entries)

    def since(self, seq: int) -> list[LedgerEntry]:
        """Entries with ``entry.seq > seq`` that are still kept."""
        return self.entries[max(seq - self.dropped, 0) :]

    def changes(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The changes recorded, optionally only those of one ``kind``."""
        return [
            e.change
            for e in self.entries
            if e.change is not None and (kind is None or e.change.get("kind") == kind)
        ]

"""The vocabulary of write outcomes, shared by the executor, the journal and ``decide``.

One definition, because the rule "may this key be sent again?" is read by three layers:
the executor (before a call), the journal (``begin`` re-opens a key) and the pure core
(attempt counting). If they disagreed a write could be doubled or never retried.
"""

from __future__ import annotations

from typing import Final, Literal

Outcome = Literal[
    "applied",
    "rejected",
    "failed",
    "unknown",
    "resolved_applied",
    "resolved_not_applied",
    "moot",
    "dry_run",
    "refused",
    "duplicate",
    "ambiguous",
]
"""What became of one write, as the executor reports and the journal stores it."""

Resolution = Literal["applied", "not_applied", "moot", "unknown", "ambiguous"]
"""What a read of the cloud says about a write whose reply was lost or unreadable.
``ambiguous`` is final: the evidence fits both "ours happened" and "someone else's", so
it is reported to a person instead of being claimed (or resent)."""

PENDING: Final = "pending"
"""Outcome of an intent whose call has not been journaled as done (sent or not)."""

RETRYABLE_OUTCOMES: Final = frozenset({"resolved_not_applied", "failed"})
"""Outcomes after which the same key may be sent again: a read proved nothing happened,
or the server refused before applying anything."""

UNRESOLVED: Final = frozenset({PENDING, "unknown"})
"""Outcomes that may or may not have had an effect: resolved by reading, never resent."""

APPLIED: Final = frozenset({"applied", "resolved_applied"})
"""Outcomes that prove the write took effect."""

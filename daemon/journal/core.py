"""The journal's semantics, written once for every backend.

``JournalBase`` implements the whole ``Journal`` protocol on top of ``Tx``, a handful of
dumb storage primitives (get/put a row, insert-or-ignore a sighting, ...). A backend
only says how to run one ``Tx`` atomically: ``MemoryJournal`` calls it on dicts,
``SqliteJournal`` runs it inside ``BEGIN IMMEDIATE`` on its worker thread. So the rules
that matter (when a key may be sent again, what ``facts`` contains, what retention may
delete) cannot drift between the real store and the test double.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol, Self, TypeVar

from daemon.journal.store import HistoryRow
from daemon.kernel.errors import JournalError
from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.keys import override_key
from daemon.kernel.outcomes import PENDING, RETRYABLE_OUTCOMES, UNRESOLVED
from daemon.kernel.overrides import Override
from daemon.kernel.writes import WriteIntent

T = TypeVar("T")


def utc(at: datetime) -> datetime:
    """Every stored instant is aware UTC; a naive one is taken to be UTC already."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def order(row: HistoryRow) -> tuple[datetime, str]:
    """The one row order (oldest first, key breaks ties), used by every listing."""
    return (row.at, row.key)


class Tx(Protocol):
    """Storage primitives of one atomic unit of work. No rules live here."""

    def get_intent(self, key: str) -> HistoryRow | None: ...

    def put_intent(self, row: HistoryRow) -> None:
        """Insert or replace the row with ``row.key``."""
        ...

    def intents_of(self, execution_id: str) -> list[HistoryRow]: ...

    def sightings_of(self, execution_id: str) -> dict[str, datetime]: ...

    def add_sighting(self, execution_id: str, node_id: str, at: datetime) -> None:
        """Insert or ignore: an existing sighting keeps its time."""
        ...

    def remove_sighting(self, execution_id: str, node_id: str) -> None: ...

    def owned(self, account: str | None) -> set[str]:
        """The account's owned triggers, and those journaled before ownership had an
        account (account ''); None: every account's."""
        ...

    def set_owned(self, account: str, workflow_id: str, reason: str, at: datetime) -> None:
        """Also drops a pre-account ('') row for the workflow: it is this account's now."""
        ...

    def owned_at(self, account: str, workflow_id: str) -> datetime | None:
        """When the account (or a pre-account row) claimed it; None if not owned."""
        ...

    def unset_owned(self, account: str, workflow_id: str) -> None:
        """The account's row and a pre-account ('') one."""
        ...

    def select_history(
        self, since: datetime | None, workflow_id: str | None, limit: int | None
    ) -> list[HistoryRow]:
        """Rows with ``at >= since`` (and the workflow), the newest ``limit``, any order."""
        ...

    def prune(self, cutoff: datetime) -> int:
        """Delete intents with ``finished_at < cutoff`` and sightings older than it."""
        ...

    def compactable(
        self, kinds: frozenset[str], since: datetime | None, cutoff: datetime
    ) -> list[HistoryRow]:
        """Finished intents of ``kinds`` with ``since <= at < cutoff``, any order."""
        ...

    def delete_intents(self, keys: list[str]) -> None: ...

    def forget_execution(self, execution_id: str) -> None:
        """Delete every sighting of the execution."""
        ...

    def unresolved(self) -> list[HistoryRow]:
        """Intents whose outcome is ``pending`` or ``unknown``, any order."""
        ...

    def get_tick(self, scope: str) -> datetime | None: ...

    def set_tick(self, scope: str, at: datetime) -> None: ...

    def get_overrides(self) -> list[str]:
        """Every override document (JSON), any order."""
        ...

    def put_override(self, override_id: str, doc: str, until: datetime) -> None:
        """Insert or replace the override ``override_id``."""
        ...


COMPACTABLE_KINDS: Final = frozenset({"trigger_enable", "trigger_disable"})
"""Writes that repeat by design: a calendar toggling every few minutes writes the same
change to the same trigger all day long. Each one is an API write and is journaled like
any other (exactly-once), but once its key can never be used again (trigger keys name
the pass second) a day of them says no more than their count and first and last times."""

FINAL_FOR_COMPACTION: Final = frozenset(
    {"applied", "resolved_applied", "rejected", "moot", "dry_run", "ambiguous"}
)
"""Outcomes whose key is closed for good. Not ``pending``/``unknown`` (the sweep still
resolves them) nor ``failed``/``resolved_not_applied`` (the same key may be sent again)."""


def compact_in(tx: Tx, since: datetime | None, cutoff: datetime) -> int:
    """Fold compactable rows older than ``cutoff`` per (workflow, action, rule, outcome,
    dry run, UTC day) into the group's latest row, which keeps its key, reason and
    request id and gains ``repeats`` and ``first_at``. Returns the rows removed."""
    groups: dict[tuple[object, ...], list[HistoryRow]] = {}
    for row in tx.compactable(COMPACTABLE_KINDS, since, cutoff):
        if row.outcome not in FINAL_FOR_COMPACTION:
            continue
        group = (row.workflow_id, row.kind, row.rule, row.outcome, row.dry_run, row.at.date())
        groups.setdefault(group, []).append(row)
    removed: list[str] = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        rows.sort(key=order)
        keep = rows[-1]
        tx.put_intent(
            dataclasses.replace(
                keep,
                repeats=sum(r.repeats for r in rows),
                first_at=min(r.first_at or r.at for r in rows),
            )
        )
        removed.extend(r.key for r in rows[:-1])
    if removed:
        tx.delete_intents(removed)
    return len(removed)


COLUMNS = (
    "key, kind, workflow_id, execution_id, node_id, attempt, rule, reason, observed, "
    "dry_run, outcome, request_id, error, created_at, finished_at, tries, repeats, first_at"
)
"""The intents table's columns, in the order every SQL store selects and inserts them."""


def history_query(
    since: object | None, workflow_id: str | None, limit: int | None, mark: str
) -> tuple[str, list[object]]:
    """The ``aomd history`` SELECT of both SQL stores and its parameters: ``mark`` is
    the driver's placeholder (``?`` or ``%s``), ``since`` already in the store's time
    encoding."""
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append(f"created_at >= {mark}")
        params.append(since)
    if workflow_id is not None:
        where.append(f"workflow_id = {mark}")
        params.append(workflow_id)
    sql = f"SELECT {COLUMNS} FROM intents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, key DESC"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(limit)
    return sql, params


def history_row(r: Sequence[Any], time: Callable[[Any], datetime]) -> HistoryRow:
    """A row selected as ``COLUMNS``; ``time`` reads the store's instant type."""
    return HistoryRow(
        key=r[0],
        kind=r[1],
        workflow_id=r[2],
        execution_id=r[3],
        node_id=r[4],
        attempt=int(r[5]),
        rule=r[6],
        reason=r[7],
        observed=r[8],
        dry_run=bool(r[9]),
        outcome=r[10],
        request_id=r[11],
        error=r[12],
        at=time(r[13]),
        finished_at=None if r[14] is None else time(r[14]),
        tries=int(r[15]),
        repeats=int(r[16]),
        first_at=None if r[17] is None else time(r[17]),
    )


def row_from_intent(intent: WriteIntent, at: datetime, *, tries: int = 1) -> HistoryRow:
    return HistoryRow(
        at=utc(at),
        key=intent.key,
        kind=intent.kind,
        workflow_id=intent.workflow_id,
        execution_id=intent.execution_id,
        node_id=intent.node_id,
        attempt=intent.attempt,
        rule=intent.rule,
        reason=intent.reason,
        outcome=PENDING,
        request_id=None,
        error=None,
        dry_run=intent.dry_run,
        finished_at=None,
        observed=intent.observed,
        tries=tries,
    )


def begin_in(tx: Tx, intent: WriteIntent, at: datetime) -> str | None:
    """Record the intent unless its key exists. A key whose outcome proved nothing
    happened (``RETRYABLE_OUTCOMES``) is reset to pending with the new intent's details
    (reason, observed state, time) so that the next send is journaled like the first."""
    existing = tx.get_intent(intent.key)
    if existing is None:
        tx.put_intent(row_from_intent(intent, at))
        return None
    if existing.outcome in RETRYABLE_OUTCOMES:
        tx.put_intent(row_from_intent(intent, at, tries=existing.tries + 1))
    return existing.outcome


def record_in(tx: Tx, intent: WriteIntent, outcome: str, at: datetime) -> str | None:
    """Record a decision that calls nothing (a skipped fire time, a stop told to a person)
    with its final outcome in one step, so no kill can leave it ``pending``. Like
    ``begin_in``: returns the existing outcome of a key already recorded (and then
    changes nothing unless that outcome was retryable)."""
    if outcome in UNRESOLVED:
        raise JournalError(f"cannot record intent {intent.key!r} with outcome {outcome!r}")
    existing = tx.get_intent(intent.key)
    if existing is not None and existing.outcome not in RETRYABLE_OUTCOMES:
        return existing.outcome
    tries = 1 if existing is None else existing.tries + 1
    row = row_from_intent(intent, at, tries=tries)
    tx.put_intent(dataclasses.replace(row, outcome=outcome, finished_at=utc(at)))
    return None if existing is None else existing.outcome


def finish_in(
    tx: Tx, key: str, outcome: str, request_id: str | None, error: str | None, at: datetime
) -> None:
    """Record the outcome. Finishing twice overwrites (``unknown`` then ``resolved_*``)."""
    if outcome == PENDING:
        raise JournalError(f"cannot finish intent {key!r} with outcome {PENDING!r}")
    existing = tx.get_intent(key)
    if existing is None:
        raise JournalError(f"cannot finish intent {key!r}: it was never begun (or was pruned)")
    tx.put_intent(
        dataclasses.replace(
            existing, outcome=outcome, request_id=request_id, error=error, finished_at=utc(at)
        )
    )


def facts_in(tx: Tx, execution_id: str) -> ExecutionFacts:
    writes = tuple(
        PastWrite(
            key=r.key,
            kind=r.kind,
            node_id=r.node_id,
            attempt=r.attempt,
            rule=r.rule,
            outcome=r.outcome,
            at=r.at,
            observed=r.observed,
        )
        for r in sorted(tx.intents_of(execution_id), key=order)
    )
    return ExecutionFacts(
        execution_id=execution_id,
        writes=writes,
        first_seen=dict(sorted(tx.sightings_of(execution_id).items())),
    )


def _override_intent(override: Override, event: str, reason: str) -> WriteIntent:
    return WriteIntent(
        key=override_key(override.id, event),
        kind=f"override_{event}",
        workflow_id=f"{override.target_kind}:{override.target}",
        rule=override.ticket,
        reason=reason,
    )


class JournalBase(ABC):
    """Implements ``Journal`` given a way to run one ``Tx`` atomically."""

    @abstractmethod
    async def _run(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` as one atomic unit; translate storage failures to ``JournalError``."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def begin(self, intent: WriteIntent, at: datetime) -> str | None:
        return await self._run(lambda tx: begin_in(tx, intent, at))

    async def record(self, intent: WriteIntent, outcome: str, at: datetime) -> str | None:
        return await self._run(lambda tx: record_in(tx, intent, outcome, at))

    async def intent(self, key: str) -> HistoryRow | None:
        return await self._run(lambda tx: tx.get_intent(key))

    async def unresolved(self) -> list[HistoryRow]:
        return sorted(await self._run(lambda tx: tx.unresolved()), key=order)

    async def last_tick(self, scope: str) -> datetime | None:
        return await self._run(lambda tx: tx.get_tick(scope))

    async def set_last_tick(self, scope: str, at: datetime) -> None:
        await self._run(lambda tx: tx.set_tick(scope, utc(at)))

    async def finish(
        self,
        key: str,
        outcome: str,
        *,
        request_id: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        await self._run(lambda tx: finish_in(tx, key, outcome, request_id, error, at))

    async def owned_triggers(self, account: str | None = None) -> set[str]:
        return await self._run(lambda tx: tx.owned(account))

    async def owned_since(self, workflow_id: str, account: str = "") -> datetime | None:
        return await self._run(lambda tx: tx.owned_at(account, workflow_id))

    async def set_trigger_owned(
        self, workflow_id: str, owned: bool, *, reason: str, at: datetime, account: str = ""
    ) -> None:
        def op(tx: Tx) -> None:
            if owned:
                tx.set_owned(account, workflow_id, reason, utc(at))
            else:
                tx.unset_owned(account, workflow_id)

        await self._run(op)

    async def facts(self, execution_id: str) -> ExecutionFacts:
        return await self._run(lambda tx: facts_in(tx, execution_id))

    async def saw(self, execution_id: str, node_id: str, at: datetime) -> None:
        await self._run(lambda tx: tx.add_sighting(execution_id, node_id, utc(at)))

    async def forget_seen(self, execution_id: str, node_id: str) -> None:
        await self._run(lambda tx: tx.remove_sighting(execution_id, node_id))

    async def history(
        self,
        since: datetime | None = None,
        workflow_id: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        cutoff = None if since is None else utc(since)
        rows = await self._run(lambda tx: tx.select_history(cutoff, workflow_id, limit))
        return sorted(rows, key=order)

    async def prune(self, older_than: datetime) -> int:
        return await self._run(lambda tx: tx.prune(utc(older_than)))

    async def overrides(self) -> list[Override]:
        """Every override ever added (ended and expired ones too), oldest first."""
        docs = await self._run(lambda tx: tx.get_overrides())
        found = [Override.loads(d) for d in docs]
        return sorted(found, key=lambda o: (o.start or o.until, o.id))

    async def add_override(self, override: Override, at: datetime) -> None:
        """Store it and journal an ``override_add`` row, in one step, so ``history``
        shows who granted what, when, with which ticket."""

        def op(tx: Tx) -> None:
            if any(Override.loads(d).id == override.id for d in tx.get_overrides()):
                raise JournalError(f"override {override.id!r} exists already")
            tx.put_override(override.id, override.dumps(), utc(override.until))
            record_in(tx, _override_intent(override, "add", override.describe()), "applied", at)

        await self._run(op)

    async def end_override(self, override_id: str, by: str, at: datetime) -> Override | None:
        """End it now (None if there is no such override); journaled as ``override_end``."""

        def op(tx: Tx) -> Override | None:
            for doc in tx.get_overrides():
                found = Override.loads(doc)
                if found.id == override_id:
                    ended = found.ended(utc(at), by)
                    tx.put_override(found.id, ended.dumps(), utc(found.until))
                    why = f"ended by {by}: {found.describe()}"
                    record_in(tx, _override_intent(found, "end", why), "applied", at)
                    return ended
            return None

        return await self._run(op)

    async def compact(self, older_than: datetime, since: datetime | None = None) -> int:
        start = None if since is None else utc(since)
        return await self._run(lambda tx: compact_in(tx, start, utc(older_than)))

    async def reclaim(self) -> int:
        return 0

    def size(self) -> int:
        return 0

    async def forget_execution(self, execution_id: str) -> None:
        """The execution is over: its sightings (first times a node was seen stopped)
        matter no more. Without this they stayed until retention, millions of rows."""
        await self._run(lambda tx: tx.forget_execution(execution_id))

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

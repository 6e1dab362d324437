"""The one path every write takes: guards, journal intent, call, journal outcome.

Exactly-once effect comes from three rules enforced here and nowhere else:

1. the intent is journaled under its idempotency key *before* the call, and a key that
   already has an intent is never sent again unless a later read proved it was not applied;
2. the outcome is journaled after the call, shielded from cancellation;
3. a lost reply (``OutcomeUnknown``) is resolved by reading state again, never by resending.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog

from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.engine.write_retry import RetryBook, WriteRetryPolicy
from daemon.kernel.clock import Clock
from daemon.kernel.errors import (
    CloudError,
    JournalError,
    MalformedResponse,
    OutcomeUnknown,
    PermanentCloudError,
    TemporaryCloudError,
)
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, UNRESOLVED, Outcome, Resolution
from daemon.kernel.ports import JournalPort, WriteGuard
from daemon.kernel.shards import Shard
from daemon.kernel.writes import WriteIntent, WriteReport

log = structlog.get_logger("aomd.executor")

REFUSAL_MEMORY = 4096
"""Refused keys remembered for log de-duplication; oldest forgotten first."""


class Executor:
    def __init__(
        self,
        *,
        journal: JournalPort,
        clock: Clock,
        blast: BlastRadius,
        breaker: CircuitBreaker,
        leader: WriteGuard,
        dry_run: bool,
        on_outcome: Callable[[WriteIntent, WriteReport], None] | None = None,
        retry: WriteRetryPolicy | None = None,
    ) -> None:
        self.journal = journal
        self.retries = RetryBook(retry or WriteRetryPolicy())
        """Failed writes and when each is due again (``WriteReport.retry_at``)."""
        self.clock = clock
        self.blast = blast
        self.breaker = breaker
        self.leader = leader
        self.dry_run = dry_run
        self.on_outcome = on_outcome
        self.journal_errors = 0
        """Outcome writes the journal refused (``aomd_journal_errors_total``)."""
        self.stopping = False
        """Set on shutdown: no new writes start, in-flight ones finish."""
        self._refusal_logged: dict[str, str] = {}
        """key -> last refusal logged for it (so a refused key is logged once per reason);
        bounded by ``REFUSAL_MEMORY`` because refused keys may never come back."""
        self._tripped: set[str] = set()
        """Blast-radius scopes currently capped: ``"*"`` or workflow ids."""
        self.in_flight = 0
        self._keys_in_flight: set[str] = set()
        """Keys whose write (or resolution) is under way in this process: a second
        writer of the same key must neither send it again nor read state before the
        first call landed (it would see "not applied" and journal that)."""

    @property
    def blast_tripped(self) -> bool:
        """Exposed as a metric: some blast-radius cap (global or per workflow) is hit.

        Re-checked on read, so a cap whose window has passed clears even when nothing
        tries to write to that workflow again."""
        now = self.clock.monotonic()
        for scope in list(self._tripped):
            capped = (
                self.blast.tripped(now)
                if scope == "*"
                else self.blast.check(scope, now) is not None
            )
            if not capped:
                self._tripped.discard(scope)
                log.warning("blast_radius_cleared", scope=scope)
        return bool(self._tripped)

    def _refuse(self, intent: WriteIntent, shard: Shard | None) -> tuple[str | None, float | None]:
        """``(why refused, None)`` or ``(None, reserved)``: on success a blast-radius slot
        is taken at monotonic time ``reserved`` *before* the first await, so concurrent
        writers cannot all pass the check and overshoot the cap; ``_unreserve`` gives it
        back when nothing is sent."""
        now = self.clock.monotonic()
        if self.stopping:
            return "shutting down", None
        if not self.leader.may_write(shard):
            return "not the leader" if shard is None else f"not holding {shard.label}", None
        refusal = self.breaker.check(now)
        if refusal is not None:
            return refusal.reason, None
        refusal = self.blast.check(intent.workflow_id, now)
        if refusal is not None:
            self.breaker.release_trial()
            if refusal.scope not in self._tripped:
                self._tripped.add(refusal.scope)
                log.error(
                    "blast_radius_tripped",
                    scope=refusal.scope,
                    workflow_id=intent.workflow_id,
                    reason=refusal.reason,
                )
            return refusal.reason, None
        for scope in ("*", intent.workflow_id):
            if scope in self._tripped:
                self._tripped.discard(scope)
                log.warning("blast_radius_cleared", scope=scope, workflow_id=intent.workflow_id)
        self.blast.record(intent.workflow_id, now)
        return None, now

    def _unreserve(self, intent: WriteIntent, reserved: float | None) -> None:
        if reserved is not None:
            self.blast.release(intent.workflow_id, reserved)
            self.breaker.release_trial()

    async def write(
        self,
        intent: WriteIntent,
        call: Callable[[], Awaitable[Any]],
        resolve: Callable[[], Awaitable[Resolution]] | None = None,
        *,
        shard: Shard | None = None,
    ) -> WriteReport:
        """Make ``intent`` happen at most once. ``call`` does the API write; ``resolve``
        reads state again to tell whether a write with a lost reply took effect;
        ``shard``: the shard it belongs to, when replicas split the work."""
        dry = self.dry_run or intent.dry_run
        bound = self._bind(intent, dry)
        if intent.key in self._keys_in_flight:
            return WriteReport("duplicate")
        self._keys_in_flight.add(intent.key)
        try:
            return await self._write(intent, call, resolve, bound, dry, shard)
        finally:
            self._keys_in_flight.discard(intent.key)

    @staticmethod
    def _bind(intent: WriteIntent, dry: bool) -> Any:
        return log.bind(
            workflow_id=intent.workflow_id,
            execution_id=intent.execution_id,
            node_id=intent.node_id,
            rule=intent.rule,
            action=intent.kind,
            attempt=intent.attempt,
            reason=intent.reason,
            dry_run=dry,
        )

    async def _write(
        self,
        intent: WriteIntent,
        call: Callable[[], Awaitable[Any]],
        resolve: Callable[[], Awaitable[Resolution]] | None,
        bound: Any,
        dry: bool,
        shard: Shard | None,
    ) -> WriteReport:
        reserved: float | None = None
        if not dry:
            why, reserved = self._refuse(intent, shard)
            if why is not None:
                if self._refusal_logged.get(intent.key) != why:
                    self._refusal_logged.pop(intent.key, None)
                    self._refusal_logged[intent.key] = why
                    while len(self._refusal_logged) > REFUSAL_MEMORY:
                        del self._refusal_logged[next(iter(self._refusal_logged))]
                    bound.warning("action_refused", outcome="refused", refusal=why, request_id=None)
                return WriteReport("refused", error=why)
        self._refusal_logged.pop(intent.key, None)
        now = self.clock.now()
        try:
            existing = await self.journal.begin(intent, now)
        except BaseException:
            self._unreserve(intent, reserved)
            raise
        if existing in UNRESOLVED:
            # Sent before (or maybe sent) and never resolved: read state, never resend.
            self._unreserve(intent, reserved)
            if resolve is None:
                return WriteReport("unknown")
            return await self._resolve(intent, resolve, bound)
        if existing is not None and existing not in RETRYABLE_OUTCOMES:
            self._unreserve(intent, reserved)
            return WriteReport("duplicate")
        if dry:
            await self._finish(intent, WriteReport("dry_run"))
            bound.info("action_decided", outcome="dry_run", request_id=None)
            return WriteReport("dry_run")
        # In flight until the outcome is journaled: a shutdown drain waits for the
        # journal write too, not only for the call (else the journal may be closed
        # under a finished call's shielded outcome write).
        self.in_flight += 1
        try:
            report = await self._call(intent, call)
            if report.outcome == "unknown":
                await self._finish(intent, report)
                bound.warning("action_sent", outcome="unknown", request_id=report.request_id)
                if resolve is not None:
                    return await self._resolve(intent, resolve, bound)
                return report
            await self._finish(intent, report)
        finally:
            self.in_flight -= 1
        level = "info" if report.outcome == "applied" else "warning"
        if report.outcome == "failed":
            retry_at = self.retries.failed(intent.key, self.clock.now(), report.retry_after)
            report = dataclasses.replace(report, retry_at=retry_at)
            getattr(bound, level)(
                "action_sent",
                outcome=report.outcome,
                request_id=report.request_id,
                error=report.error,
                failures=self.retries.failures(intent.key),
                retry_at=retry_at.isoformat() if retry_at is not None else None,
            )
            return report
        getattr(bound, level)(
            "action_sent", outcome=report.outcome, request_id=report.request_id, error=report.error
        )
        return report

    async def _call(self, intent: WriteIntent, call: Callable[[], Awaitable[Any]]) -> WriteReport:
        # The blast-radius slot was taken in ``_refuse``.
        try:
            result = await call()
        except CloudError as exc:
            outcome, healthy = next((o, h) for t, o, h in _CLASSIFIED if isinstance(exc, t))
            self.breaker.record(healthy, self.clock.monotonic())
            delay = exc.delay if isinstance(exc, TemporaryCloudError) else None
            return WriteReport(outcome, exc.request_id, _describe(exc), retry_after=delay)
        self.breaker.record(True, self.clock.monotonic())
        request_id = getattr(result, "request_id", None)
        return WriteReport("applied", request_id, None, result)

    async def _resolve(
        self,
        intent: WriteIntent,
        resolve: Callable[[], Awaitable[Resolution]],
        bound: Any,
    ) -> WriteReport:
        try:
            resolution = await resolve()
        except CloudError as exc:
            bound.warning(
                "outcome_unresolved",
                outcome="unknown",
                error=_describe(exc),
                request_id=exc.request_id,
            )
            return WriteReport("unknown", exc.request_id, _describe(exc))
        if resolution == "unknown":
            return WriteReport("unknown")
        outcome = _RESOLVED[resolution]
        report = WriteReport(outcome)
        await self._finish(intent, report)
        level = "warning" if outcome == "ambiguous" else "info"
        getattr(bound, level)("outcome_resolved", outcome=outcome, request_id=None)
        return report

    async def record(self, intent: WriteIntent, outcome: str, at: datetime | None = None) -> bool:
        """Journal a decision that calls nothing (a skipped fire time, a stop left to a
        person) in one atomic step. False when the key was already recorded: the caller
        must then neither log nor notify it again (after a restart, say)."""
        existing = await self.journal.record(intent, outcome, at or self.clock.now())
        return existing is None or existing in RETRYABLE_OUTCOMES

    async def resolve_open(
        self,
        intent: WriteIntent,
        resolve: Callable[[], Awaitable[Resolution]],
        *,
        shard: Shard | None = None,
    ) -> WriteReport:
        """Find out what became of a journaled write still ``pending``/``unknown`` (the
        sweep after a crash) by reading state only: nothing is ever sent from here, and
        only the replica that may write journals the answer."""
        if self.stopping or not self.leader.may_write(shard):
            return WriteReport("refused")
        if intent.key in self._keys_in_flight:
            return WriteReport("duplicate")
        self._keys_in_flight.add(intent.key)
        try:
            return await self._resolve(intent, resolve, self._bind(intent, intent.dry_run))
        finally:
            self._keys_in_flight.discard(intent.key)

    async def finish_open(
        self, intent: WriteIntent, outcome: str, *, shard: Shard | None = None
    ) -> bool:
        """Close an open row whose outcome needs no read (a legacy two-step record, a
        DataArts action that cannot be read back: ``unknown``). Leader only."""
        if self.stopping or not self.leader.may_write(shard):
            return False
        await self.journal.finish(
            intent.key, outcome, request_id=None, error=None, at=self.clock.now()
        )
        log.info("outcome_resolved", key=intent.key, action=intent.kind, outcome=outcome)
        return True

    async def _finish(self, intent: WriteIntent, report: WriteReport) -> None:
        # Shielded: a shutdown must not lose the record of a write that happened.
        try:
            await asyncio.shield(
                self.journal.finish(
                    intent.key,
                    report.outcome,
                    request_id=report.request_id,
                    error=report.error,
                    at=self.clock.now(),
                )
            )
        except JournalError:
            self.journal_errors += 1
            log.exception("journal_write_failed", key=intent.key, outcome=report.outcome)
            raise
        if report.outcome != "failed":
            self.retries.settled(intent.key)
        if self.on_outcome is not None:
            self.on_outcome(intent, report)


_CLASSIFIED: tuple[tuple[type[CloudError], Outcome, bool], ...] = (
    # (error type, outcome, did the cloud answer as a healthy service), first match wins
    (OutcomeUnknown, "unknown", False),  # sent, no answer: resolve by reading
    # a 2xx whose body cannot be read: the write may well have happened. Not "rejected"
    # (never looked at again): resolved by reading, like a lost reply
    (MalformedResponse, "unknown", False),
    (TemporaryCloudError, "failed", False),  # 429/5xx/refused: the server said no
    (PermanentCloudError, "rejected", True),  # a real answer: never sent again
    (CloudError, "unknown", False),
)

_RESOLVED: dict[Resolution, Outcome] = {
    "applied": "resolved_applied",
    "not_applied": "resolved_not_applied",
    "moot": "moot",
    "ambiguous": "ambiguous",
}


def _describe(exc: CloudError) -> str:
    code = f" {exc.error_code}" if exc.error_code else ""
    status = f" HTTP {exc.status}" if exc.status else ""
    return f"{type(exc).__name__}{status}{code}: {exc}"

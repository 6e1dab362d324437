"""MemoryJournal must behave exactly like SqliteJournal: random op sequences, same answers.

The contract tests pin the rules; this catches what they did not think of (ordering ties,
time zones, limits, prune edges) in the one place the two stores differ: storage.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.journal import Journal, MemoryJournal, SqliteJournal
from daemon.kernel.errors import JournalError
from daemon.kernel.writes import WriteIntent

T0 = datetime(2026, 11, 26, tzinfo=UTC)
OUTCOMES = ["applied", "rejected", "failed", "unknown", "resolved_applied",
            "resolved_not_applied", "moot", "dry_run", "pending"]  # fmt: skip

executions = st.sampled_from(["e1", "e2"])
nodes = st.sampled_from(["n1", "n2"])
instants = st.builds(
    lambda minutes, offset, naive: (
        (T0 + timedelta(minutes=minutes)).replace(tzinfo=None)
        if naive
        else (T0 + timedelta(minutes=minutes)).astimezone(timezone(timedelta(hours=offset)))
    ),
    st.integers(0, 20),
    st.integers(-12, 14),
    st.booleans(),
)
intents = st.builds(
    lambda e, n, a, kind, obs, dry: WriteIntent(
        key=f"exec/{e}/{n or '-'}/{kind}/{a}",
        kind=kind,
        workflow_id=f"wf-{e}",
        execution_id=e,
        node_id=n,
        attempt=a,
        rule="r",
        reason=f"because {obs}",
        observed=obs,
        dry_run=dry,
    ),
    executions,
    st.one_of(st.none(), nodes),
    st.integers(1, 2),
    st.sampled_from(["restart", "continue"]),
    st.text("ab", max_size=2),
    st.booleans(),
)
keys = intents.map(lambda i: i.key)
ops = st.one_of(
    st.tuples(st.just("begin"), intents, instants),
    st.tuples(st.just("finish"), keys, st.sampled_from(OUTCOMES), st.none() | st.just("req"), instants),
    st.tuples(st.just("facts"), executions),
    st.tuples(st.just("saw"), executions, nodes, instants),
    st.tuples(st.just("forget_seen"), executions, nodes),
    st.tuples(st.just("own"), st.sampled_from(["wf-e1", "wf-x"]), st.booleans(), instants),
    st.tuples(st.just("owned")),
    st.tuples(st.just("history"), st.none() | instants, st.none() | st.just("wf-e1"),
              st.none() | st.integers(0, 4)),
    st.tuples(st.just("prune"), instants),
)  # fmt: skip


async def _apply(journal: Journal, op: tuple[Any, ...]) -> object:
    name, *args = op
    try:
        if name == "begin":
            return await journal.begin(args[0], args[1])
        if name == "finish":
            key, outcome, request_id, at = args
            return await journal.finish(key, outcome, request_id=request_id, error=None, at=at)
        if name == "facts":
            return await journal.facts(args[0])
        if name == "saw":
            return await journal.saw(*args)
        if name == "forget_seen":
            return await journal.forget_seen(*args)
        if name == "own":
            return await journal.set_trigger_owned(args[0], args[1], reason="x", at=args[2])
        if name == "owned":
            return await journal.owned_triggers()
        if name == "history":
            return await journal.history(*args)
        return await journal.prune(args[0])
    except JournalError as exc:
        return ("JournalError", str(exc))


async def _compare(sequence: list[tuple[Any, ...]], directory: Path) -> None:
    memory = MemoryJournal()
    async with SqliteJournal(directory / "journal.sqlite3") as sqlite:
        for op in sequence:
            assert await _apply(sqlite, op) == await _apply(memory, op), op
        for final in [("history", None, None, None), ("owned",), ("facts", "e1"), ("facts", "e2")]:
            assert await _apply(sqlite, final) == await _apply(memory, final), final


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=3, max_size=30))
def test_memory_and_sqlite_agree(sequence: list[tuple[Any, ...]]) -> None:
    loop = asyncio.new_event_loop()  # not asyncio.run: leave pytest-asyncio's loop alone
    try:
        with tempfile.TemporaryDirectory() as directory:
            loop.run_until_complete(_compare(sequence, Path(directory)))
    finally:
        loop.close()

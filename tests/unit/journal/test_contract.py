"""The journal contract, run against SqliteJournal and MemoryJournal alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.journal import HistoryRow
from daemon.kernel.errors import JournalError
from daemon.kernel.outcomes import PENDING


async def test_begin_records_once_then_reports_pending(journal, intent, t0) -> None:
    assert await journal.begin(intent(), t0(0)) is None
    assert await journal.begin(intent(), t0(1)) == PENDING
    [row] = await journal.history()
    assert row.outcome == PENDING
    assert row.at == t0(0)  # a duplicate begin does not move the intent
    assert row.tries == 1


@pytest.mark.parametrize(
    "outcome",
    ["applied", "rejected", "unknown", "resolved_applied", "moot", "dry_run", "duplicate"],
)
async def test_final_outcomes_are_returned_and_never_reset(journal, intent, t0, outcome) -> None:
    await journal.begin(intent(), t0(0))
    await journal.finish(intent().key, outcome, request_id="req-1", error=None, at=t0(1))
    assert await journal.begin(intent(reason="again"), t0(2)) == outcome
    [row] = await journal.history()
    assert (row.outcome, row.request_id, row.reason, row.tries) == (
        outcome,
        "req-1",
        "node failed",
        1,
    )
    assert row.finished_at == t0(1)


@pytest.mark.parametrize("outcome", ["failed", "resolved_not_applied"])
async def test_retryable_outcome_resets_to_pending(journal, intent, t0, outcome) -> None:
    await journal.begin(intent(), t0(0))
    await journal.finish(intent().key, outcome, request_id="r", error="HTTP 503", at=t0(1))
    again = intent(reason="second try", observed="fp-new")
    assert await journal.begin(again, t0(5)) == outcome
    [row] = await journal.history()
    assert row.outcome == PENDING
    assert (row.tries, row.at, row.reason, row.observed) == (2, t0(5), "second try", "fp-new")
    assert (row.request_id, row.error, row.finished_at) == (None, None, None)
    # now pending again: a third begin must not send it
    assert await journal.begin(again, t0(6)) == PENDING
    await journal.finish(again.key, "applied", request_id="r2", error=None, at=t0(7))
    assert await journal.begin(again, t0(8)) == "applied"


async def test_finish_overwrites_an_earlier_outcome(journal, intent, t0) -> None:
    await journal.begin(intent(), t0(0))
    await journal.finish(intent().key, "unknown", request_id=None, error="timeout", at=t0(1))
    await journal.finish(intent().key, "resolved_applied", request_id=None, error=None, at=t0(2))
    [row] = await journal.history()
    assert (row.outcome, row.error, row.finished_at) == ("resolved_applied", None, t0(2))


async def test_finish_without_begin_or_with_pending_is_an_error(journal, intent, t0) -> None:
    with pytest.raises(JournalError, match="never begun"):
        await journal.finish("nope", "applied", request_id=None, error=None, at=t0(0))
    await journal.begin(intent(), t0(0))
    with pytest.raises(JournalError, match="pending"):
        await journal.finish(intent().key, PENDING, request_id=None, error=None, at=t0(1))


async def test_concurrent_begins_of_one_key_claim_it_once(journal, intent, t0) -> None:
    results = await asyncio.gather(*(journal.begin(intent(), t0(0)) for _ in range(20)))
    assert results.count(None) == 1
    assert results.count(PENDING) == 19


async def test_facts_lists_the_executions_writes_in_order_with_sightings(
    journal, intent, t0
) -> None:
    await journal.begin(intent("e1", "n1", 2), t0(3))
    await journal.begin(intent("e1", "n1", 1), t0(1))
    await journal.finish(intent("e1", "n1", 1).key, "applied", request_id="a", error=None, at=t0(2))
    await journal.begin(intent("e1", None, 1, kind="terminate"), t0(3))
    await journal.begin(intent("e2", "n1", 1), t0(0))
    await journal.saw("e1", "n1", t0(0.5))
    await journal.saw("e2", "n9", t0(0))

    facts = await journal.facts("e1")
    assert facts.execution_id == "e1"
    assert [(w.node_id, w.kind, w.attempt, w.outcome) for w in facts.writes] == [
        ("n1", "restart", 1, "applied"),
        (None, "terminate", 1, PENDING),  # same time as attempt 2: the key breaks the tie
        ("n1", "restart", 2, PENDING),
    ]
    first = facts.writes[0]
    assert (first.key, first.rule, first.at, first.observed) == (
        "exec/e1/n1/restart/1",
        "retry-failed",
        t0(1),
        "fp-1",
    )
    assert dict(facts.first_seen) == {"n1": t0(0.5)}
    assert len(facts.writes_for("n1")) == 2

    empty = await journal.facts("unknown")
    assert (empty.writes, dict(empty.first_seen)) == ((), {})


async def test_instants_come_back_as_aware_utc(journal, intent, t0) -> None:
    berlin = timezone(timedelta(hours=1))
    naive = datetime(2026, 11, 26, 10, 0)
    await journal.begin(intent("e1", "n1"), naive)
    await journal.begin(intent("e1", "n2"), t0(0).astimezone(berlin))
    await journal.saw("e1", "n1", naive)
    facts = await journal.facts("e1")
    assert [w.at for w in facts.writes] == [t0(0), t0(0)]
    assert all(w.at.tzinfo == UTC for w in facts.writes)
    assert facts.first_seen["n1"] == t0(0)
    assert facts.first_seen["n1"].utcoffset() == timedelta(0)


async def test_saw_keeps_the_first_sighting_until_forgotten(journal, t0) -> None:
    await journal.saw("e1", "n1", t0(0))
    await journal.saw("e1", "n1", t0(5))
    assert (await journal.facts("e1")).first_seen == {"n1": t0(0)}
    await journal.forget_seen("e1", "n1")
    await journal.forget_seen("e1", "n1")  # forgetting twice is harmless
    assert (await journal.facts("e1")).first_seen == {}
    await journal.saw("e1", "n1", t0(9))
    assert (await journal.facts("e1")).first_seen == {"n1": t0(9)}


async def test_trigger_ownership(journal, t0) -> None:
    assert await journal.owned_triggers() == set()
    await journal.set_trigger_owned("wf-a", True, reason="freeze", at=t0(0))
    await journal.set_trigger_owned("wf-a", True, reason="freeze again", at=t0(1))
    await journal.set_trigger_owned("wf-b", True, reason="holiday", at=t0(1))
    assert await journal.owned_triggers() == {"wf-a", "wf-b"}
    await journal.set_trigger_owned("wf-a", False, reason="freeze over", at=t0(2))
    await journal.set_trigger_owned("wf-c", False, reason="never owned", at=t0(2))
    assert await journal.owned_triggers() == {"wf-b"}


async def test_history_round_trips_every_column(journal, intent, t0) -> None:
    it = intent("e1", "n1", 3, dry_run=True, reason="pause > 10 min", rule="continue-pauses")
    await journal.begin(it, t0(0))
    await journal.finish(it.key, "dry_run", request_id=None, error=None, at=t0(1))
    assert await journal.history() == [
        HistoryRow(
            at=t0(0),
            key=it.key,
            kind="restart",
            workflow_id="wf-e1",
            execution_id="e1",
            node_id="n1",
            attempt=3,
            rule="continue-pauses",
            reason="pause > 10 min",
            outcome="dry_run",
            request_id=None,
            error=None,
            dry_run=True,
            finished_at=t0(1),
            observed="fp-3",
            tries=1,
        )
    ]


async def test_history_filters_and_limit(journal, intent, t0) -> None:
    for i in range(6):
        await journal.begin(intent(f"e{i % 2}", "n1", i), t0(i))
    rows = await journal.history()
    assert [r.attempt for r in rows] == [0, 1, 2, 3, 4, 5]  # oldest first
    assert [r.attempt for r in await journal.history(since=t0(2))] == [2, 3, 4, 5]
    assert [r.attempt for r in await journal.history(workflow_id="wf-e1")] == [1, 3, 5]
    assert [r.attempt for r in await journal.history(t0(2), "wf-e0")] == [2, 4]
    assert [r.attempt for r in await journal.history(limit=2)] == [4, 5]  # the newest two
    assert [r.attempt for r in await journal.history(limit=100)] == [0, 1, 2, 3, 4, 5]
    assert await journal.history(limit=0) == []
    assert await journal.history(since=t0(60)) == []
    with pytest.raises(ValueError, match="limit"):
        await journal.history(limit=-1)


async def test_prune_removes_old_finished_rows_only(journal, intent, t0) -> None:
    old_done, old_pending, new_done = intent("e1", "n1"), intent("e1", "n2"), intent("e2", "n1")
    for it in (old_done, old_pending, new_done):
        await journal.begin(it, t0(0))
    await journal.finish(old_done.key, "applied", request_id=None, error=None, at=t0(1))
    await journal.finish(new_done.key, "applied", request_id=None, error=None, at=t0(100))
    await journal.set_trigger_owned("wf-a", True, reason="freeze", at=t0(0))
    await journal.saw("e1", "n1", t0(0))
    await journal.saw("e2", "n1", t0(100))
    await journal.saw("streak-holds/t", "wf-b", t0(0))  # a hold lasts until a person acts

    assert await journal.prune(t0(50)) == 2  # one intent, one sighting
    assert {r.key for r in await journal.history()} == {old_pending.key, new_done.key}
    assert await journal.owned_triggers() == {"wf-a"}
    assert (await journal.facts("e1")).first_seen == {}
    assert (await journal.facts("e2")).first_seen == {"n1": t0(100)}
    assert (await journal.facts("streak-holds/t")).first_seen == {"wf-b": t0(0)}
    assert await journal.prune(t0(50)) == 0
    # a pruned key is new again: the engine only prunes far beyond any retry horizon
    assert await journal.begin(old_done, t0(200)) is None


async def test_open_and_close_are_idempotent_and_async_with_works(journal) -> None:
    await journal.open()
    async with journal as same:
        assert same is journal
        assert await journal.owned_triggers() == set()
    await journal.close()


async def _toggle(journal, intent, at: datetime, action: str, n: int, outcome="applied") -> str:  # type: ignore[no-untyped-def]
    it = intent(
        None,
        None,
        1,
        kind=action,
        key=f"trigger/t/wf-a/{action}/{at:%Y%m%dT%H%M%S}",
        workflow_id="wf-a",
        rule="freeze-all",
        reason=f"toggle {n}",
    )
    await journal.begin(it, at)
    await journal.finish(it.key, outcome, request_id=f"r{n}", error=None, at=at)
    return it.key


async def test_compaction_folds_a_days_trigger_toggles_into_one_row_each(
    journal, intent, t0
) -> None:
    """A calendar that toggles every 4 minutes: older than the cutoff, each day's
    disables and enables of one workflow become one row each that counts them."""
    keys = []
    for i in range(10):  # 10:00 .. 10:36, alternating
        action = "trigger_disable" if i % 2 == 0 else "trigger_enable"
        keys.append(await _toggle(journal, intent, t0(4 * i), action, i))
    pending = intent("e9", "n1")  # an open operation is never touched
    await journal.begin(pending, t0(1))
    failed = await _toggle(journal, intent, t0(2), "trigger_disable", 99, outcome="failed")
    # the cutoff leaves the last two toggles as they are
    assert await journal.compact(t0(32)) == 6
    rows = await journal.history()
    folded = {(r.kind, r.outcome): r for r in rows if r.repeats > 1}
    off = folded[("trigger_disable", "applied")]
    on = folded[("trigger_enable", "applied")]
    assert (off.repeats, off.first_at, off.at, off.key, off.request_id) == (
        4,
        t0(0),
        t0(24),
        keys[6],
        "r6",
    )
    assert (on.repeats, on.first_at, on.at) == (4, t0(4), t0(28))
    # the newest toggles, the failed one (its key may be sent again) and the open
    # operation are kept as they were
    assert {r.key for r in rows if r.repeats == 1} == {keys[8], keys[9], failed, pending.key}
    # idempotent, and a later round folds into the rows already folded
    assert await journal.compact(t0(32)) == 0
    assert await journal.compact(t0(60)) == 2
    assert sorted(r.repeats for r in await journal.history() if r.repeats > 1) == [5, 5]
    # another UTC day is another row
    await _toggle(journal, intent, t0(24 * 60), "trigger_disable", 100)
    await _toggle(journal, intent, t0(24 * 60 + 8), "trigger_disable", 101)
    assert await journal.compact(t0(3 * 24 * 60), since=t0(24 * 60)) == 1
    assert sorted(r.repeats for r in await journal.history() if r.repeats > 1) == [2, 5, 5]


async def test_forget_execution_drops_its_sightings_only(journal, t0) -> None:
    await journal.saw("e1", "n1", t0(0))
    await journal.saw("e1", "n2", t0(1))
    await journal.saw("e2", "n1", t0(2))
    await journal.forget_execution("e1")
    assert (await journal.facts("e1")).first_seen == {}
    assert (await journal.facts("e2")).first_seen == {"n1": t0(2)}

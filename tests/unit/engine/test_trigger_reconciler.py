"""TriggerReconciler against the emulator: freeze disables, end re-enables only what aomd
disabled, drift is corrected or reported, a second pass in the same state is a no-op."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from daemon.calendar.plan import PlanItem
from daemon.cli.cmd_plan import mark_live
from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.notify import Notifier
from daemon.engine.trigger_reconciler import TriggerReconciler
from daemon.journal import MemoryJournal
from daemon.kernel.model import Workflow
from daemon.policy import PolicySet, load_policy_dir
from tests.support.clocks import EmulatorClock
from tests.support.engine import DECISION_KEYS, make_executor
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

# T0 = 2026-11-26 10:00Z; the freeze is [09:00, 11:00)
POLICY = """
calendars:
  freeze:
    ranges:
      - {start: "2026-11-26T09:00:00Z", end: "2026-11-26T11:00:00Z"}
triggers:
  - name: report-only
    select: {names: ["watch-*"]}
    off_during: freeze
    drift: report
  - name: freeze-all
    select: {names: ["*"]}
    off_during: freeze
"""


def _setup(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, dry: bool = False
) -> tuple[TriggerReconciler, PolicySet, EmulatorClock]:
    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    clock = EmulatorClock.of(emu)
    rec = TriggerReconciler(
        client=client,
        ownership=journal,
        executor=make_executor(journal, clock, dry_run=dry),
        account="t",
    )
    return rec, policy, clock


def _cron(emu: Emulator, name: str, enabled: bool = True) -> str:
    return emu.add_workflow(name=name, type="cron", cron="0 3 * * *", trigger_enabled=enabled)


async def _pass(rec: TriggerReconciler, policy: PolicySet, clock: EmulatorClock) -> None:
    await rec.reconcile(policy.triggers, policy.built_calendars, clock.now())


async def test_freeze_disables_and_its_end_re_enables_only_owned(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    ours = _cron(emu, "nightly")
    theirs = _cron(emu, "manual-off", enabled=False)
    emu.add_workflow(name="no-trigger", type="manual")
    rec, policy, clock = _setup(emu, client, journal, tmp_path)
    await _pass(rec, policy, clock)
    assert emu.workflow(ours).trigger_enabled is False
    assert await journal.owned_triggers() == {ours}
    assert rec.owned_count == 1
    writes = len(emu.changes())
    await _pass(rec, policy, clock)  # same state: nothing to do
    assert len(emu.changes()) == writes
    emu.advance(3600 + 1)  # the freeze ends
    await _pass(rec, policy, clock)
    assert emu.workflow(ours).trigger_enabled is True
    assert emu.workflow(theirs).trigger_enabled is False  # a person turned it off: untouched
    assert await journal.owned_triggers() == set()


async def test_drift_is_corrected_or_only_reported(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    corrected = _cron(emu, "nightly")
    reported = _cron(emu, "watch-db")
    rec, policy, clock = _setup(emu, client, journal, tmp_path)
    await _pass(rec, policy, clock)
    assert not emu.workflow(corrected).trigger_enabled
    assert not emu.workflow(reported).trigger_enabled
    emu.set_trigger(corrected, True)  # someone re-enables both inside the freeze
    emu.set_trigger(reported, True)
    emu.advance(120)  # a new minute: a new idempotency key for the correction
    with capture_logs() as logs:
        await _pass(rec, policy, clock)
    assert emu.workflow(corrected).trigger_enabled is False
    assert emu.workflow(reported).trigger_enabled is True
    drift = {e["workflow_id"]: e["outcome"] for e in logs if e["event"] == "drift"}
    assert drift == {corrected: "correcting", reported: "reported"}
    assert all(e.keys() >= DECISION_KEYS for e in logs if e["event"] in ("drift", "action_sent"))
    assert rec.drifts == 2


async def test_dry_run_changes_nothing_and_owns_nothing(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    wid = _cron(emu, "nightly")
    rec, policy, clock = _setup(emu, client, journal, tmp_path, dry=True)
    await _pass(rec, policy, clock)
    assert emu.workflow(wid).trigger_enabled is True
    assert emu.changes() == []
    assert await journal.owned_triggers() == set()
    assert [r.outcome for r in await journal.history()] == ["dry_run"]


def test_unreadable_trigger_state_is_disabled_once_and_re_enabled_after(tmp_path: Path) -> None:
    """``trigger_status`` values are not published: one aomd cannot read (None) was
    disabled on every pass of a freeze (logged as drift each time) and, since only an
    observed ``False`` was re-enabled, never turned back on after it."""
    from datetime import timedelta

    from daemon.engine.trigger_reconciler import plan_triggers
    from daemon.kernel.model import Workflow
    from tests.support.clocks import T0

    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    cals = policy.built_calendars
    wf = Workflow(id="w1", name="nightly", type="cron", trigger_status="ACTIVE")
    assert wf.trigger_enabled is None
    [off] = plan_triggers([wf], policy.triggers, cals, set(), T0)
    assert (off.enable, off.drift) == (False, False)
    assert plan_triggers([wf], policy.triggers, cals, {"w1"}, T0) == []  # ours already
    after = T0 + timedelta(hours=1, seconds=1)
    [on] = plan_triggers([wf], policy.triggers, cals, {"w1"}, after)
    assert on.enable
    assert plan_triggers([wf], policy.triggers, cals, set(), after) == []  # not ours


STREAK_POLICY = """
calendars:
  freeze:
    ranges:
      - {start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}
triggers:
  - name: nightly-streak
    select: {names: ["nightly-*"]}
    off_during: freeze
    pause_after_failures: {count: 2, within: 24h}
"""


async def test_a_failure_streak_disables_the_trigger_until_a_person_re_enables_it(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    wid = emu.add_workflow(
        name="nightly-etl",
        type="cron",
        cron="0 3 * * *",
        nodes=[{"id": "load", "duration": 5, "behaviour": "fail"}],
    )
    policy = load_policy_dir(write_rules(tmp_path, STREAK_POLICY))
    clock = EmulatorClock.of(emu)
    notifier = Notifier(webhook.url)

    def reconciler() -> TriggerReconciler:  # a restart: a new one on the same journal
        return TriggerReconciler(
            client=client,
            ownership=journal,
            executor=make_executor(journal, clock),
            account="t",
            streaks=journal,
            notifier=notifier,
        )

    async def fail_once() -> None:
        emu.start_execution(wid)
        emu.advance(10)

    await fail_once()
    await _pass(reconciler(), policy, clock)
    assert emu.workflow(wid).trigger_enabled is True  # one failure is not a streak
    await fail_once()
    with capture_logs() as logs:
        await _pass(reconciler(), policy, clock)
    assert emu.workflow(wid).trigger_enabled is False
    [paused] = [e for e in logs if e["event"] == "failure_streak_paused"]
    assert "2 failed executions within 24h" in paused["reason"]
    assert await notifier.flush() == 1
    assert webhook.received[0]["kind"] == "failure_streak"
    rows = [(r.kind, r.outcome) for r in await journal.history()]
    assert rows == [("trigger_disable", "applied")]
    # the calendar says enabled, but the hold wins, across a restart too
    emu.advance(600)
    await _pass(reconciler(), policy, clock)
    assert emu.workflow(wid).trigger_enabled is False
    # a person re-enables it: released, the old failures no longer count
    await client.set_trigger(wid, True)
    emu.advance(60)
    await _pass(reconciler(), policy, clock)
    await _pass(reconciler(), policy, clock)
    assert emu.workflow(wid).trigger_enabled is True
    assert await journal.owned_triggers() == set()
    # two new failures make a new streak
    await fail_once()
    await fail_once()
    await _pass(reconciler(), policy, clock)
    assert emu.workflow(wid).trigger_enabled is False


def test_plan_live_shows_a_held_trigger_as_held() -> None:
    policy = PolicySet(triggers=())
    at = datetime(2026, 1, 5, tzinfo=UTC)
    wf = Workflow(id="w1", name="nightly-etl", type="cron", trigger_status="disable")
    items = [
        PlanItem(at, "trigger", rule="r", workflow_id="w1", enable=True, initial=True),
        PlanItem(at, "trigger", rule="r", workflow_id="w1", enable=False),
    ]
    [held] = mark_live(items, [wf], policy.triggers, owned={"w1"}, held={"w1"})
    assert (held.enable, held.reason) == (
        False,
        "held after a failure streak (pause_after_failures); off until a person re-enables it",
    )
    # without the hold, the owned trigger is re-enabled at once as before
    plain = mark_live(items, [wf], policy.triggers, owned={"w1"})
    assert plain[0].reason == "now disabled; aomd enables it at once"


def test_a_freeze_after_an_allow_rule_still_disables(tmp_path: Path) -> None:
    """Two files: the allow rule (a-allow.yaml) comes first in name order; the freeze in
    z-freeze.yaml still wins, and a drift under it is corrected (the stricter drift)."""
    from daemon.engine.trigger_reconciler import plan_triggers
    from daemon.kernel.model import Workflow
    from daemon.policy import load_policy_dir
    from tests.support.clocks import T0

    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "a-allow.yaml").write_text(
        "calendars:\n  always: {recurring: [{cron: '0 0 * * *', duration: 1d}]}\n"
        "triggers:\n  - name: cn-allow\n    select: {tags: {region: cn}}\n"
        "    on_only_during: always\n    manage: full\n    drift: report\n"
    )
    (pol / "z-freeze.yaml").write_text(
        "calendars:\n  freeze:\n    ranges: [{start: '2000-01-01T00:00:00Z', end: '2100-01-01T00:00:00Z'}]\n"
        "triggers:\n  - name: freeze-all\n    select: {names: ['*']}\n    off_during: freeze\n"
        "    drift: correct\n"
    )
    policy = load_policy_dir(pol)
    wf = Workflow(id="w1", name="etl", type="cron", tags={"region": "cn"}, trigger_status="enable")
    [off] = plan_triggers([wf], policy.triggers, policy.built_calendars, set(), T0)
    assert (off.enable, off.rule, off.drift) == (False, "freeze-all", False)
    assert "deny beats allow of cn-allow" in off.reason
    [drift] = plan_triggers([wf], policy.triggers, policy.built_calendars, {"w1"}, T0)
    assert drift.drift
    assert not drift.report_only
    assert [w for w in policy.warnings if "'freeze-all'" in w and "'cn-allow'" in w]


def test_overrides_win_over_calendars_and_expire_by_themselves(tmp_path: Path) -> None:
    import dataclasses
    from datetime import timedelta
    from typing import Any

    from daemon.engine.trigger_reconciler import plan_triggers
    from daemon.kernel.model import Workflow
    from daemon.kernel.overrides import Override
    from tests.support.clocks import T0

    policy = load_policy_dir(write_rules(tmp_path, POLICY))
    cals, rules = policy.built_calendars, policy.triggers
    on = Workflow(id="w1", name="nightly", type="cron", trigger_status="enable")
    off = Workflow(id="w1", name="nightly", type="cron", trigger_status="disable")

    base = Override(
        id="ov",
        target_kind="workflow",
        target="w1",
        state="on",
        start=T0 - timedelta(minutes=1),
        until=T0 + timedelta(minutes=30),
        ticket="CHG-1",
        who="alice",
    )

    def ov(kind: str, target: str, state: str) -> Override:
        fields: dict[str, Any] = {"target_kind": kind, "target": target, "state": state}
        return dataclasses.replace(base, id=f"ov-{state}", **fields)

    [frozen] = plan_triggers([on], rules, cals, set(), T0)  # the freeze disables it
    assert not frozen.enable
    [forced] = plan_triggers([off], rules, cals, {"w1"}, T0, overrides=[ov("workflow", "w1", "on")])
    assert forced.enable
    assert "override ov-on CHG-1 (workflow w1 on until" in forced.reason
    assert (
        plan_triggers([on], rules, cals, set(), T0, overrides=[ov("workflow", "w1", "hold")]) == []
    )
    assert (
        plan_triggers([on], rules, cals, set(), T0, overrides=[ov("rule", "freeze-all", "hold")])
        == []
    )
    [voted] = plan_triggers(
        [off], rules, cals, {"w1"}, T0, overrides=[ov("rule", "freeze-all", "on")]
    )
    assert voted.enable
    assert "(overridden)" in voted.reason
    # Expired: the calendars decide again, with nothing having to run at the expiry.
    later = T0 + timedelta(minutes=31)
    [again] = plan_triggers([on], rules, cals, set(), later, overrides=[ov("workflow", "w1", "on")])
    assert not again.enable


async def test_freeze_start_and_end_are_notified_once_per_rule(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path, webhook: Webhook
) -> None:
    from daemon.engine.notify import Notifier

    a, b = _cron(emu, "nightly-a"), _cron(emu, "nightly-b")
    rec, policy, clock = _setup(emu, client, journal, tmp_path)
    rec.notifier = notifier = Notifier(webhook.url)
    await _pass(rec, policy, clock)
    await _pass(rec, policy, clock)  # nothing changes: nothing told
    emu.advance(3600 + 1)
    await _pass(rec, policy, clock)
    await notifier.flush()
    got = [(m["kind"], m["rule"], m["calendar"], m["workflow_ids"]) for m in webhook.received]
    assert got == [
        ("freeze_started", "freeze-all", "freeze", sorted([a, b])),
        ("freeze_ended", "freeze-all", "freeze", sorted([a, b])),
    ]


async def test_on_release_run_once_runs_before_the_re_enable_and_only_once(
    emu: Emulator, client: AomClient, journal: MemoryJournal, tmp_path: Path
) -> None:
    text = POLICY + (
        "  - name: release-once\n    select: {names: ['nightly']}\n    off_during: freeze\n"
        "    on_release: run_once\n    trigger_cron: '*/30 * * * *'\n"
    )
    policy = load_policy_dir(write_rules(tmp_path, text))
    wid = _cron(emu, "nightly")
    other = _cron(emu, "other")
    clock = EmulatorClock.of(emu)
    rec = TriggerReconciler(
        client=client,
        ownership=journal,
        executor=make_executor(journal, clock),
        account="t",
        journal=journal,
    )
    await _pass(rec, policy, clock)  # 10:00 the freeze disables both
    emu.advance(3600 + 1)  # 11:00:01: released; the 10:30 fire was suppressed
    await _pass(rec, policy, clock)
    await _pass(rec, policy, clock)
    assert emu.workflow(wid).trigger_enabled is True
    assert emu.workflow(other).trigger_enabled is True
    kinds = [(c["kind"], c["workflow_id"]) for c in emu.changes() if c["workflow_id"] == wid]
    assert kinds == [("trigger", wid), ("execute", wid), ("trigger", wid)]  # run, then enable
    assert len(await client.list_executions(other)) == 0  # not its rule
    [row] = [r for r in await journal.history() if r.key.startswith("release/")]
    assert row.outcome == "applied"
    assert "the 2026-11-26T10:30:00+00:00 fire was suppressed" in row.reason

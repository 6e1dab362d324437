"""Calendars end to end: the real daemon, the real emulator, an accelerated clock.

The emulator runs in a thread of the test process (``EmulatorThread``) and survives
daemon restarts; the daemon runs in a subprocess (``tests/e2e/calendar_daemon.py``) whose
clock mirrors the emulator's, so both agree on emulated "now" and the daemon can be
stopped, ``kill -9``-ed and restarted across calendar transitions. The witness is the
emulator's ledger: ``trigger`` changes (aomd's trigger writes), ``CRON`` entries (the
emulator's cron firing a workflow) and ``execute`` changes (scheduled runs), each with its
emulated time. Nothing here asserts durations; the clock only makes the days short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.emulator.emulator import Emulator
from daemon.emulator.faults import Fault
from daemon.emulator.ledger import LedgerEntry
from daemon.emulator.thread import EmulatorThread
from daemon.kernel.clock import SystemClock
from tests.support.processes import AK, PROJECT, SK, DaemonProcess, write_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("clock-sensitive")]
"""One worker runs the accelerated-clock tests and the crash test one after another: at
180x a second of CPU starvation is three emulated minutes, so they must not compete."""

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
"""Emulated start: a Monday morning, far from any real date so nothing depends on today."""
NODE = {"id": "n", "name": "n", "kind": "task", "duration": 5, "behaviour": "succeed"}
EVERY_MINUTE = "* * * * *"
LONG_AGO = ("2000-01-01T00:00:00Z", "2000-01-02T00:00:00Z")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class World:
    """One emulator (kept across daemon restarts) plus the files a daemon reads."""

    tmp: Path
    speed: float
    reconcile_interval: float = 60.0
    origin: datetime = T0
    """Emulated start; the override test starts at the real now, since ``aomd override``
    reads the system clock."""
    et: EmulatorThread = field(init=False)
    daemons: list[DaemonProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.et = EmulatorThread(
            project_id=PROJECT,
            access_key=AK,
            secret_key=SK,
            speed=self.speed,
            start_time=self.origin,
        )
        self.et.__enter__()
        (self.tmp / "policies").mkdir(parents=True)
        # reconcile_interval is real seconds (checked on a 5 s heartbeat): by default the
        # periodic safety-net pass comes far later (in emulated time) than any transition
        # these tests look at, so transitions are handled by the APScheduler wake-ups and
        # the start-up pass, which is what is under test.
        self.cfg = write_settings(
            self.tmp, self.et.url, reconcile_interval=self.reconcile_interval, http=False
        )

    def close(self) -> None:
        for d in self.daemons:
            if d.proc.poll() is None:
                d.kill()
        self.et.__exit__(None, None, None)

    # -- emulator --------------------------------------------------------------------------

    def call(self, fn: Callable[[Emulator], Any]) -> Any:
        return self.et.call(fn)

    def now(self) -> datetime:
        now: datetime = self.call(lambda e: e.now())
        return now

    def cron_workflow(self, wid: str, group: str, *, enabled: bool = True) -> None:
        self.call(
            lambda e: e.add_workflow(
                id=wid,
                name=wid,
                type="cron",
                cron=EVERY_MINUTE,
                tags={"group": group},
                nodes=[NODE],
                trigger_enabled=enabled,
            )
        )

    def ledger(self) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = self.call(lambda e: list(e.ledger))
        return entries

    def trigger_writes(self, wid: str) -> list[tuple[datetime, bool]]:
        return [
            (e.time, bool(e.change["enabled"]))
            for e in self.ledger()
            if e.change and e.change["kind"] == "trigger" and e.change["workflow_id"] == wid
        ]

    def cron_fires(self, wid: str) -> list[datetime]:
        return [e.time for e in self.ledger() if e.method == "CRON" and wid in e.path]

    def executes(self, wid: str) -> list[datetime]:
        return [
            e.time
            for e in self.ledger()
            if e.change and e.change["kind"] == "execute" and e.change["workflow_id"] == wid
        ]

    def enabled(self, wid: str) -> bool:
        return bool(self.call(lambda e: e.workflow(wid).trigger_enabled))

    def wait_until(self, t: datetime, daemon: DaemonProcess | None = None) -> None:
        """Sleep (really) until emulated time reaches ``t``."""
        while (now := self.now()) < t:
            if daemon is not None and daemon.proc.poll() is not None:
                raise AssertionError(f"daemon exited:\n{daemon.output()[-4000:]}")
            time.sleep(min(0.2, (t - now).total_seconds() / self.speed + 0.01))

    # -- daemon ----------------------------------------------------------------------------

    def policy(self, text: str) -> None:
        path = self.tmp / "policies" / "calendar.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def start(self) -> DaemonProcess:
        anchor, mono = self.call(lambda e: (e.now(), time.monotonic()))
        env = {k: v for k, v in os.environ.items() if k != "AOMD_CONFIG"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.calendar_daemon",
                "--config",
                str(self.cfg),
                "--anchor",
                anchor.isoformat(),
                "--mono",
                repr(mono),
                "--speed",
                str(self.speed),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        daemon = DaemonProcess(proc)
        self.daemons.append(daemon)
        return daemon

    def history(self) -> list[dict[str, Any]]:
        """``aomd history --json`` over all time: what an operator would read."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon.cli",
                "--config",
                str(self.cfg),
                "history",
                "--json",
                "--since",
                "2000-01-01T00:00:00",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
            check=True,
        )
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(speed: float, **kw: Any) -> World:
        w = World(tmp_path / f"w{len(worlds)}", speed, **kw)
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.close()


# -- freeze: triggers off during, back on after; ownership; drift ---------------------------

FREEZE_POLICY = """
calendars:
  freeze:
    timezone: UTC
    ranges:
      - {{start: "{start}", end: "{end}"}}
triggers:
  - name: owned
    select: {{tags: {{group: owned}}}}
    off_during: freeze
  - name: full
    select: {{tags: {{group: full}}}}
    off_during: freeze
    manage: full
  - name: drift-correct
    select: {{tags: {{group: drift}}}}
    off_during: freeze
  - name: drift-report
    select: {{tags: {{group: report}}}}
    off_during: freeze
    drift: report
"""


@dataclass
class FreezeRun:
    world: World
    start: datetime
    end: datetime
    person_at: datetime
    events: list[dict[str, Any]]
    rc: int


@pytest.fixture(scope="module")
def freeze_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreezeRun]:
    """One daemon across one freeze, shared by the freeze/ownership/drift tests.

    Workflows (all cron every emulated minute): ``wf-owned`` enabled; ``wf-person``
    disabled by a person before the freeze; ``wf-full`` disabled by a person but under
    ``manage: full``; ``wf-drift`` / ``wf-report`` re-enabled by a person mid-freeze
    (``drift: correct`` / ``report``); ``wf-free`` selected by no rule (the control).
    """
    w = World(tmp_path_factory.mktemp("freeze"), speed=120.0)
    try:
        for wid, group, enabled in [
            ("wf-owned", "owned", True),
            ("wf-person", "owned", False),
            ("wf-full", "full", False),
            ("wf-drift", "drift", True),
            ("wf-report", "report", True),
            ("wf-free", "none", True),
        ]:
            w.cron_workflow(wid, group, enabled=enabled)
        w.policy(FREEZE_POLICY.format(start=LONG_AGO[0], end=LONG_AGO[1]))
        d = w.start()
        d.wait_event("daemon_ready")
        d.wait_for(lambda: w.enabled("wf-full"), what="manage: full enables wf-full")
        # The freeze is placed relative to the daemon being up (start-up time varies),
        # 5 s past a minute so a slow pass cannot race the cron fire at the minute.
        start = _next_minute(w.now()) + timedelta(minutes=2, seconds=5)
        end = start + timedelta(minutes=8)
        w.policy(FREEZE_POLICY.format(start=_iso(start), end=_iso(end)))
        d.signal(signal.SIGHUP)
        d.wait_event("policy_reloaded")
        assert w.now() < start, "policy reload came after the freeze start; test premise broken"

        # Mid-freeze, a person re-enables two triggers aomd had disabled.
        w.wait_until(start + timedelta(minutes=3), d)
        assert not w.enabled("wf-drift"), "wf-drift not disabled 3 emulated minutes into freeze"
        person_at = w.now()
        w.call(lambda e: e.set_trigger("wf-drift", True))
        w.call(lambda e: e.set_trigger("wf-report", True))
        # Drift is noticed by the next reconcile pass: the periodic safety net in
        # production (see the periodic test below); here a SIGHUP nudges one pass so the
        # freeze's transitions stay the waker's alone.
        d.signal(signal.SIGHUP)
        d.wait_for(
            lambda: len([e for e in d.find("drift") if e.get("workflow_id") == "wf-report"]),
            what="drift reported for wf-report",
        )
        d.wait_for(lambda: not w.enabled("wf-drift"), what="drift corrected on wf-drift")
        w.wait_until(end + timedelta(minutes=3), d)
        rc = d.stop()
        yield FreezeRun(w, start, end, person_at, list(d.events), rc)
    finally:
        w.close()


@pytest.mark.timeout(60)
def test_freeze_disables_cron_triggers_and_reenables_them_after(freeze_run: FreezeRun) -> None:
    r, w = freeze_run, freeze_run.world
    assert r.rc == 0
    for wid in ("wf-owned", "wf-full"):
        writes = w.trigger_writes(wid)
        off = [t for t, on in writes if not on]
        on_after = [t for t, on in writes if on and t >= r.end]
        assert len(off) == 1, (wid, writes)
        assert r.start <= off[0] < r.end, (wid, writes, r.start)
        assert on_after, (wid, writes, r.end)  # the fixture waited only 3 min past the end
        fires = w.cron_fires(wid)
        assert [t for t in fires if r.start <= t < r.end] == [], f"{wid} fired in the freeze"
        assert [t for t in fires if t > on_after[0]], f"{wid} did not fire after the freeze"
        assert w.enabled(wid)
    # The control workflow kept firing every minute through the window.
    assert len([t for t in w.cron_fires("wf-free") if r.start <= t < r.end]) == 8
    assert w.trigger_writes("wf-free") == []


@pytest.mark.timeout(60)
def test_trigger_disabled_by_a_person_stays_disabled_unless_manage_full(
    freeze_run: FreezeRun,
) -> None:
    w = freeze_run.world
    assert w.trigger_writes("wf-person") == []  # never touched: aomd does not own it
    assert not w.enabled("wf-person")
    assert w.cron_fires("wf-person") == []
    full = w.trigger_writes("wf-full")
    # manage: full enables it at start-up, then it follows the freeze like any other
    assert [on for _, on in full] == [True, False, True], full
    assert full[0][0] < freeze_run.start


@pytest.mark.timeout(60)
def test_trigger_reenabled_inside_freeze_is_drift(freeze_run: FreezeRun) -> None:
    r, w = freeze_run, freeze_run.world
    drift = [(t, on) for t, on in w.trigger_writes("wf-drift")]
    # disabled at the start, disabled again after the person, enabled at the end
    assert [on for _, on in drift] == [False, False, True], drift
    assert r.start <= drift[0][0] < r.person_at <= drift[1][0] < r.end <= drift[2][0]
    events = {(e["workflow_id"], e["outcome"]) for e in r.events if e.get("event") == "drift"}
    assert ("wf-drift", "correcting") in events
    # drift: report only logs: no second disable, and the trigger really fired in the freeze
    report = w.trigger_writes("wf-report")
    assert [on for _, on in report] == [False], report
    assert ("wf-report", "reported") in events
    assert ("wf-report", "correcting") not in events
    assert [t for t in w.cron_fires("wf-report") if r.person_at < t < r.end]
    assert w.enabled("wf-report")
    assert not [
        e
        for e in r.events
        if e.get("event") == "drift"
        and e.get("workflow_id") in ("wf-owned", "wf-full", "wf-person", "wf-free")
    ]


# -- a daemon stopped across a transition heals on start-up ----------------------------------

HEAL_POLICY = """
calendars:
  freeze:
    ranges:
      - {{start: "{start}", end: "{end}"}}
triggers:
  - name: owned
    select: {{tags: {{group: owned}}}}
    off_during: freeze
"""


@pytest.mark.timeout(60)
def test_daemon_stopped_across_transitions_heals_on_start(
    make_world: Callable[..., World],
) -> None:
    """Stopped before the freeze; time jumps past its start; started again: the daemon
    disables the first trigger and is killed -9 while that PUT is in flight (the
    emulator applies it after the kill). The next start-up pass heals the other trigger.
    Stopped inside; time jumps past the end; started again: both are re-enabled, which
    needs the journal to say aomd owns them, including the one whose reply never came.

    The periodic pass is 60 real s (= 1 emulated hour) away and the next transition is
    hours away, so within the waits below only the start-up pass can have acted."""
    w = make_world(60.0)
    w.cron_workflow("wf-a", "owned")
    w.cron_workflow("wf-b", "owned")
    w.cron_workflow("wf-person", "owned", enabled=False)
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    w.policy(HEAL_POLICY.format(start=_iso(start), end=_iso(end)))

    d = w.start()
    d.wait_event("daemon_ready")
    assert d.stop() == 0
    assert w.trigger_writes("wf-a") == w.trigger_writes("wf-b") == []  # nothing to do yet

    w.call(lambda e: e.advance((start + timedelta(minutes=10) - e.now()).total_seconds()))
    w.call(
        lambda e: e.inject(Fault(kind="latency", method="PUT", path="/trigger/action$", delay=1.0))
    )
    d = w.start()
    d.wait_for(
        lambda: any(f["fired"] for f in w.call(lambda e: e.faults.list())),
        what="first trigger PUT in flight",
    )
    d.kill()
    w.call(lambda e: e.clear_faults())

    def trigger_changes() -> list[str]:
        return [e.change["workflow_id"] for e in w.ledger() if e.change and e.method == "PUT"]

    _wait(trigger_changes, "the in-flight PUT applied after the kill")
    [first] = trigger_changes()
    other = "wf-b" if first == "wf-a" else "wf-a"
    assert not w.enabled(first)
    assert w.enabled(other)

    restarted = w.now()
    d = w.start()
    d.wait_for(lambda: not w.enabled(other), timeout=8.0, what=f"start-up pass disables {other}")
    [(at, on)] = w.trigger_writes(other)
    assert not on
    assert at - restarted < timedelta(minutes=5)
    d.wait_event("daemon_ready")
    assert d.stop() == 0

    w.call(lambda e: e.advance((end + timedelta(minutes=10) - e.now()).total_seconds()))
    restarted = w.now()
    d = w.start()
    d.wait_for(
        lambda: w.enabled("wf-a") and w.enabled("wf-b"),
        timeout=8.0,
        what="start-up pass re-enables wf-a and wf-b",
    )
    d.wait_event("daemon_ready")
    assert d.stop() == 0
    w.call(lambda e: e.advance(120))  # two more cron minutes
    for wid in ("wf-a", "wf-b"):
        writes = w.trigger_writes(wid)
        assert [on for _, on in writes] == [False, True], (wid, writes)
        assert writes[1][0] - restarted < timedelta(minutes=5)
        # cron fired nothing while it was off
        assert [t for t in w.cron_fires(wid) if writes[0][0] <= t < writes[1][0]] == []
        assert w.cron_fires(wid)[-1] > writes[1][0]
    # the person's trigger was never touched
    assert w.trigger_writes("wf-person") == []
    assert not w.enabled("wf-person")


# -- scheduled runs: exactly once across kill -9; blocked fires skipped and journaled ---------

SCHEDULE_POLICY = """
calendars:
  freeze:
    ranges:
      - {{start: "{start}", end: "{end}"}}
schedules:
  - name: job-every-5
    cron: "10-59/5 8 * * *"
    action: {{execute: {{workflow_id: wf-job}}}}
    blocked_by: [freeze]
    misfire_grace_seconds: 900
"""


@pytest.mark.timeout(60)
def test_scheduled_run_happens_once_across_kill_9_and_skips_blocked_fire(
    make_world: Callable[..., World],
) -> None:
    """Fires F1..F4 every 5 emulated minutes from 08:10; F2 is inside the freeze.

    F1: the execute is applied but its reply is lost and the read-back hangs; the daemon
    is killed -9 mid-resolution (journal row ``unknown``) and restarted: it must resolve
    from the cloud, not execute again. F3: killed -9 as soon as the emulator has applied
    the execute (journal row pending or finished); the restart must not run it again.
    F4 runs normally on the third daemon. Ledger: exactly one execute per unblocked fire.
    """
    # 60x, not 180x: a restarted daemon that needs two real seconds to start under a
    # loaded CI machine must still find F4 due in its own five-minute slot
    w = make_world(60.0)
    w.call(lambda e: e.add_workflow(id="wf-job", name="wf-job", nodes=[NODE]))
    f1 = T0 + timedelta(minutes=10)
    f2, f3, f4 = (f1 + timedelta(minutes=5 * i) for i in (1, 2, 3))
    w.policy(
        SCHEDULE_POLICY.format(
            start=_iso(f2 - timedelta(minutes=1)), end=_iso(f2 + timedelta(minutes=1))
        )
    )
    w.call(
        lambda e: e.inject(
            Fault(kind="applied_then_lost", method="POST", path="wf-job/executions$", times=1),
            # the first list is the evidence read before the send: served normally
            Fault(kind="latency", method="GET", path="wf-job/executions$", times=1),
            Fault(kind="hang", method="GET", path="wf-job/executions$"),
        )
    )
    d1 = w.start()
    d1.wait_for(lambda: [e for e in w.ledger() if e.fault == "hang"], what="F1 read-back hanging")
    assert len(w.executes("wf-job")) == 1
    d1.kill()  # SIGKILL while resolving the lost reply
    w.call(lambda e: e.clear_faults())

    d2 = w.start()
    d2.wait_for(lambda: len(w.executes("wf-job")) == 2, timeout=30.0, what="F3 executed")
    d2.kill()  # SIGKILL right after the F3 execute was applied

    d3 = w.start()
    d3.wait_for(lambda: len(w.executes("wf-job")) >= 3, timeout=30.0, what="F4 executed")
    w.wait_until(f4 + timedelta(minutes=2), d3)
    assert d3.stop() == 0

    runs = w.executes("wf-job")
    assert len(runs) == 3, runs
    for fire, at in zip((f1, f3, f4), runs, strict=True):
        assert fire <= at < fire + timedelta(minutes=5), (fire, runs)

    rows = {r["key"]: r for r in w.history() if r["key"].startswith("schedule/")}
    key = "schedule/e2e/job-every-5/{}".format
    assert rows[key(f1.isoformat())]["outcome"] == "resolved_applied"
    assert rows[key(f3.isoformat())]["outcome"] in ("applied", "resolved_applied")
    assert rows[key(f4.isoformat())]["outcome"] == "applied"
    skipped = rows[key(f2.isoformat())]
    assert (skipped["action"], skipped["outcome"]) == ("scheduled_skipped", "skipped")
    assert "freeze" in skipped["reason"]
    assert len(d2.find("scheduled_run_skipped")) + len(d3.find("scheduled_run_skipped")) >= 1


@pytest.mark.timeout(60)
def test_periodic_pass_corrects_drift_between_transitions(
    make_world: Callable[..., World],
) -> None:
    """No transition, no reload: the safety-net pass (``reconcile_interval``, checked on
    the daemon's 5 s heartbeat) alone notices a trigger re-enabled inside a long freeze
    and disables it again."""
    w = make_world(60.0, reconcile_interval=0.5)
    w.cron_workflow("wf-a", "owned")
    w.policy(
        HEAL_POLICY.format(start=_iso(T0 - timedelta(hours=1)), end=_iso(T0 + timedelta(days=1)))
    )
    d = w.start()
    d.wait_for(lambda: not w.enabled("wf-a"), what="start-up pass disables wf-a")
    d.wait_event("daemon_ready")
    w.call(lambda e: e.set_trigger("wf-a", True))
    d.wait_for(lambda: d.find("drift"), what="drift noticed by the periodic pass")
    d.wait_for(lambda: not w.enabled("wf-a"), what="drift corrected")
    assert d.stop() == 0
    assert [on for _, on in w.trigger_writes("wf-a")] == [False, False]
    assert d.find("policy_reloaded") == []
    [drift] = d.find("drift")
    assert (drift["workflow_id"], drift["outcome"]) == ("wf-a", "correcting")


# -- catch-up: blocked runs caught up once at the freeze end, across kill -9 ------------------

CATCH_UP_POLICY = """
calendars:
  freeze:
    ranges:
      - {{start: "{start}", end: "{end}"}}
schedules:
  - name: nightly-once
    cron: "*/10 * * * *"
    action: {{execute: {{workflow_id: wf-once}}}}
    blocked_by: [freeze]
    catch_up: once
    catch_up_window: 1h
  - name: nightly-all
    cron: "*/10 * * * *"
    action: {{execute: {{workflow_id: wf-all}}}}
    blocked_by: [freeze]
    catch_up: all
    catch_up_window: 1h
"""


@pytest.mark.timeout(150)
def test_catch_up_once_and_all_survive_a_kill_9_at_the_freeze_end(
    make_world: Callable[..., World],
) -> None:
    """Fire times every 10 emulated minutes; +20 and +30 fall in the freeze (+12..+31).
    At the freeze end ``once`` runs the latest blocked fire, ``all`` runs both; the daemon
    is killed -9 right after and restarted before +40: nothing runs a second time."""
    # 60x, not 240x: at 240x a daemon 0.65 real seconds slow to start on a loaded CI
    # machine ran the +10 fire inside the freeze (+12), which the test rightly forbids
    w = make_world(60.0)
    for wid in ("wf-once", "wf-all"):
        w.call(lambda e, wid=wid: e.add_workflow(id=wid, name=wid, nodes=[NODE]))
    start, end = T0 + timedelta(minutes=12), T0 + timedelta(minutes=31)
    w.policy(CATCH_UP_POLICY.format(start=_iso(start), end=_iso(end)))
    forty = T0 + timedelta(minutes=40)

    def caught(wid: str) -> list[datetime]:
        return [t for t in w.executes(wid) if end <= t < forty]

    d1 = w.start()
    d1.wait_for(
        lambda: len(caught("wf-once")) >= 1 and len(caught("wf-all")) >= 2,
        timeout=90.0,
        what="the catch-up runs at the freeze end",
    )
    d1.kill()  # SIGKILL at the freeze end, just after the catch-ups were sent
    d2 = w.start()
    d2.wait_event("daemon_ready")  # (a SIGTERM before its handlers are set would kill it)
    w.wait_until(forty + timedelta(minutes=1), d2)
    assert d2.stop() == 0

    assert len(caught("wf-once")) == 1, w.executes("wf-once")  # the latest blocked fire
    assert len(caught("wf-all")) == 2, w.executes("wf-all")  # each blocked fire
    for wid in ("wf-once", "wf-all"):
        assert all(t < end + timedelta(minutes=3) for t in caught(wid))  # at the end
        assert not [t for t in w.executes(wid) if start <= t < end]  # nothing in the freeze
        assert len([t for t in w.executes(wid) if t >= forty]) == 1  # the next regular run
    rows = {r["key"]: r for r in w.history() if r["key"].startswith("catchup/")}
    key = "catchup/e2e/{}/{}".format
    assert set(rows) == {
        key("nightly-once", (T0 + timedelta(minutes=30)).isoformat()),
        key("nightly-all", (T0 + timedelta(minutes=20)).isoformat()),
        key("nightly-all", (T0 + timedelta(minutes=30)).isoformat()),
    }
    assert {r["outcome"] for r in rows.values()} <= {"applied", "resolved_applied"}


# -- overrides: reach a running daemon; expire while it is stopped ---------------------------

OVERRIDE_POLICY = """
calendars:
  freeze:
    ranges:
      - {{start: "{start}", end: "{end}"}}
triggers:
  - name: freeze-all
    select: {{tags: {{group: ov}}}}
    off_during: freeze
"""


def _aomd(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "--config", str(w.cfg), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )


@pytest.mark.timeout(60)
def test_override_reaches_a_running_daemon_and_expires_while_it_is_stopped(
    make_world: Callable[..., World],
) -> None:
    """A freeze holds two triggers off; ``aomd override add --workflow`` turns one on
    within seconds (no restart); the daemon is stopped, the override expires meanwhile,
    and the first pass after the restart disables it again. ``history`` shows who, the
    ticket and the reason."""
    real_now = SystemClock().now().replace(second=0, microsecond=0)  # the CLI's clock
    w = make_world(60.0, origin=real_now)
    for wid in ("wf-a", "wf-b"):
        w.cron_workflow(wid, "ov")
    w.policy(
        OVERRIDE_POLICY.format(
            start=_iso(real_now - timedelta(days=1)), end=_iso(real_now + timedelta(days=1))
        )
    )
    d1 = w.start()
    d1.wait_for(lambda: not w.enabled("wf-a") and not w.enabled("wf-b"), what="the freeze")
    until = w.now() + timedelta(minutes=8)
    added = _aomd(
        w, "override", "add", "--workflow", "wf-a", "--state", "on", "--until", _iso(until),
        "--ticket", "CHG-42", "--reason", "hotfix rollout", "--id", "ov-hotfix",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    d1.wait_for(lambda: w.enabled("wf-a"), timeout=15.0, what="the override applied")
    d1.wait_event("daemon_ready")
    assert not w.enabled("wf-b")
    assert d1.find("override_active")
    assert d1.stop() == 0
    w.wait_until(until + timedelta(minutes=1))
    assert w.enabled("wf-a")  # nobody ran at the expiry
    d2 = w.start()
    d2.wait_for(lambda: not w.enabled("wf-a"), what="the expired override no longer holds")
    d2.wait_event("daemon_ready")
    assert d2.stop() == 0
    listed = _aomd(w, "override", "list", "--all", "--json")
    [doc] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (doc["id"], doc["ticket"], doc["state"]) == ("ov-hotfix", "CHG-42", "on")
    rows = [r for r in w.history() if r["key"].startswith("override/")]
    assert [r["action"] for r in rows] == ["override_add"]
    assert rows[0]["rule"] == "CHG-42"
    assert "hotfix rollout" in rows[0]["reason"]
    enabled = [
        r for r in w.history() if r["action"] == "trigger_enable" and r["workflow_id"] == "wf-a"
    ]
    assert enabled
    assert "override ov-hotfix CHG-42" in enabled[0]["reason"]


# -- ICS, holiday and on_only_during calendars through the daemon -----------------------------

KINDS_POLICY = """
calendars:
  maint:
    timezone: UTC
    ics:
      text: |
        BEGIN:VCALENDAR
        VERSION:2.0
        PRODID:-//aomd//e2e//EN
        BEGIN:VEVENT
        UID:maint@e2e
        DTSTAMP:20260101T000000Z
        DTSTART:20260430T215500Z
        DTEND:20260430T220500Z
        SUMMARY:Maintenance
        END:VEVENT
        END:VCALENDAR
  labour-day:
    timezone: Europe/Berlin
    holidays: {country: DE}
  window:
    timezone: UTC
    recurring: [{cron: "0 22 * * *", duration: 5m}]
triggers:
  - name: ics
    select: {tags: {group: ics}}
    off_during: maint
  - name: holiday
    select: {tags: {group: hol}}
    off_during: labour-day
  - name: only-in-window
    select: {tags: {group: only}}
    on_only_during: window
"""


@pytest.mark.timeout(60)
def test_ics_holiday_and_on_only_during_calendars_drive_triggers(
    make_world: Callable[..., World],
) -> None:
    """21:45 UTC on 30 April 2026: an iCalendar event 21:55-22:05, 1 May (a German
    holiday) starting at midnight Berlin = 22:00 UTC, and a 22:00-22:05 window for an
    ``on_only_during`` rule. The ledger shows each trigger switched at its edges."""
    origin = datetime(2026, 4, 30, 21, 45, tzinfo=UTC)  # 5 s (real) before the first edge
    w = make_world(120.0, origin=origin)
    for wid, group in (("wf-ics", "ics"), ("wf-hol", "hol"), ("wf-only", "only")):
        w.cron_workflow(wid, group)
    w.policy(KINDS_POLICY)
    d = w.start()
    d.wait_event("daemon_ready")
    w.wait_until(origin + timedelta(minutes=22), d)
    assert d.stop() == 0

    def edges(wid: str) -> list[tuple[int, bool]]:
        """(minutes after 21:45, enabled) of each trigger write."""
        return [(int((t - origin).total_seconds() // 60), on) for t, on in w.trigger_writes(wid)]

    ics, hol, only = edges("wf-ics"), edges("wf-hol"), edges("wf-only")
    assert [on for _, on in ics] == [False, True], ics
    assert [m for m, _ in ics] in ([10, 20], [10, 21], [11, 20], [11, 21]), ics
    assert [on for _, on in hol] == [False], hol
    assert hol[0][0] in (15, 16), hol
    # on_only_during: off at start (outside the window), on inside it, off after it
    assert [on for _, on in only] == [False, True, False], only
    starts = [m for m, _ in only]
    assert starts[0] <= 3, only
    assert starts[1] in (15, 16), only
    assert starts[2] in (20, 21), only

"""``Daemon`` in process with an embedded emulator account: ``--once`` acts and returns 0;
``request_stop`` makes ``run`` return 0. Real journal (SQLite under tmp), real policy
files, real HTTP server on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from daemon.cli.embedded import EmbeddedEmulators
from daemon.engine.app import Daemon
from daemon.journal import SqliteJournal
from daemon.settings import (
    Account,
    EmulatorSettings,
    HttpSettings,
    LogSettings,
    Settings,
    WatchSettings,
)
from tests.support.policies import write_rules
from tests.support.webhooks import Webhook

SCENARIO = """
seed: 1
workflows:
  - id: wf-release
    name: release-web
    type: manual
    nodes:
      - {id: approve, name: approve, kind: pause}
      - {id: deploy, name: deploy, kind: task, duration: 30}
    start: 1
  - id: wf-other
    name: other
    type: manual
    nodes:
      - {id: t, name: t, kind: task, duration: 30}
"""

RULES = """
rules:
  - name: approve-release
    match: {workflow: {name: "release-*"}, node: {name: approve}, status: paused}
    action: continue
"""


def _settings(tmp_path: Path, *, speed: float = 0.0, dry_run: bool = False) -> Settings:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    return Settings(
        accounts=[Account(name="t", project_id="0" * 32, emulator=True)],
        state_dir=tmp_path / "state",
        policies_dir=write_rules(tmp_path, RULES),
        emulator=EmulatorSettings(scenario=scenario, speed=speed),
        http=HttpSettings(port=0),
        log=LogSettings(format="json", level="warning"),
        watch=WatchSettings(fast_interval=0.2, slow_interval=1.0),
        safety={"dry_run": dry_run},  # type: ignore[arg-type]
    )


def _daemon(settings: Settings, **kwargs: Any) -> tuple[Daemon, EmbeddedEmulators]:
    """A daemon composed as ``aomd run`` does: the embedded emulator started on its behalf."""
    emulators = EmbeddedEmulators(settings.emulator)
    return Daemon(settings, start_emulator=emulators.start, **kwargs), emulators


async def _journal_rows(settings: Settings) -> list[tuple[str, str, str]]:
    journal = SqliteJournal(settings.journal_path())
    await journal.open()
    try:
        return [(r.kind, r.node_id or "", r.outcome) for r in await journal.history()]
    finally:
        await journal.close()


async def test_once_acts_and_returns_0(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    daemon, emulators = _daemon(settings, once=True)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    [emu] = emulators.started
    ops = emu.changes("operation")
    assert [(c["action"], c["node_id"]) for c in ops] == [("continue", "approve")]
    assert await _journal_rows(settings) == [("continue", "approve", "applied")]


async def test_once_dry_run_decides_but_writes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path, dry_run=True)
    daemon, emulators = _daemon(settings, once=True)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    assert emulators.started[0].changes() == []
    assert await _journal_rows(settings) == [("continue", "approve", "dry_run")]


async def test_request_stop_makes_run_return_0(tmp_path: Path) -> None:
    settings = _settings(tmp_path, speed=60.0)
    ready: list[int | None] = []

    def on_ready(d: Daemon) -> None:
        ready.append(d.http_port)
        d.request_stop("test")

    daemon, _ = _daemon(settings, on_ready=on_ready)
    assert await asyncio.wait_for(daemon.run(), 30) == 0
    assert ready
    assert ready[0]  # the ops server was listening on a real port
    assert daemon.executor.stopping
    assert [rt.account.name for rt in daemon.accounts] == ["t"]


async def test_running_daemon_acts_then_stops(tmp_path: Path) -> None:
    settings = _settings(tmp_path, speed=60.0)
    daemon, emulators = _daemon(settings)
    task = asyncio.create_task(daemon.run())
    try:
        while not (emulators.started and emulators.started[0].changes("operation")):
            assert not task.done(), task
            await asyncio.sleep(0.02)
    finally:
        daemon.request_stop("test")
        code = await asyncio.wait_for(task, 30)
    assert code == 0
    [op] = emulators.started[0].changes("operation")
    assert (op["action"], op["node_id"]) == ("continue", "approve")


async def test_once_delivers_its_notifications(tmp_path: Path, webhook: Webhook) -> None:
    """An unhandled pause found by ``--once`` is notified before the process exits."""
    settings = _settings(tmp_path).model_copy(update={"notify_webhook": webhook.url})
    # the release workflow stays in scope, but no rule matches its pause node
    (settings.policies_dir / "rules.yaml").write_text(
        RULES.replace("node: {name: approve}", "node: {name: other}"), encoding="utf-8"
    )
    daemon, emulators = _daemon(settings, once=True)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    assert emulators.started[0].changes() == []
    [body] = webhook.received
    assert (body["kind"], body["node_id"]) == ("unhandled_pause", "approve")


async def test_unhandled_pauses_gauge_counts_every_account(tmp_path: Path) -> None:
    """Each account's handler reports its own count; the one gauge must show the sum,
    not whichever account polled last (two accounts with one unhandled pause each
    showed 1)."""
    settings = _settings(tmp_path).model_copy(
        update={
            "accounts": [
                Account(name="a", project_id="a" * 32, emulator=True),
                Account(name="b", project_id="b" * 32, emulator=True),
            ]
        }
    )
    (settings.policies_dir / "rules.yaml").write_text(
        RULES.replace("node: {name: approve}", "node: {name: other}"), encoding="utf-8"
    )
    daemon, _ = _daemon(settings, once=True)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    assert [len(rt.handler.unhandled) for rt in daemon.accounts] == [1, 1]
    assert daemon.metrics.value("aomd_unhandled_pauses") == 2


async def test_signals_are_handled_from_the_first_await_of_start_up(tmp_path: Path) -> None:
    """SIGHUP/SIGTERM during start-up (journal open, emulator boot, ops server) must not
    hit the default action: SIGHUP's is to kill the process. A stop asked for then makes
    ``run`` return 0 once start-up is done."""
    import signal

    daemon, _ = _daemon(_settings(tmp_path, speed=60.0))
    task = asyncio.create_task(daemon.run())
    await asyncio.sleep(0)  # run() is now at its first await (opening the journal)
    assert not task.done()
    try:
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 30) == 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def test_a_cancel_from_outside_propagates(tmp_path: Path) -> None:
    """Cancelling ``run`` (not a stop request) must cancel it: swallowing the
    CancelledError made ``run`` return 0 as if a SIGTERM had stopped it."""
    ready = asyncio.Event()
    daemon, _ = _daemon(_settings(tmp_path, speed=60.0), on_ready=lambda d: ready.set())
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(ready.wait(), 30)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done
    assert task.cancelled()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)


async def test_a_rule_scoped_to_one_account_acts_in_that_account_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(
        update={
            "accounts": [
                Account(name="a", project_id="a" * 32, emulator=True),
                Account(name="b", project_id="b" * 32, emulator=True),
            ]
        }
    )
    (settings.policies_dir / "rules.yaml").write_text(
        RULES.replace("    action: continue", "    accounts: [b]\n    action: continue"),
        encoding="utf-8",
    )
    daemon, emulators = _daemon(settings, once=True)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    ops = {emu.project_id[0]: emu.changes("operation") for emu in emulators.started}
    assert ops["a"] == []
    assert [(c["action"], c["node_id"]) for c in ops["b"]] == [("continue", "approve")]
    # in account a no rule applies: its watcher does not even poll the workflow
    assert [len(rt.handler.unhandled) for rt in daemon.accounts] == [0, 0]

"""``aomd demo``: the first five minutes of a new user, with no cloud account.

Starts the real daemon in-process against the embedded emulator (the bundled demo
scenario) on an accelerated clock, with the example policies, lets it work for about a
minute of real time, then prints what it did and why from its own journal. Nothing is
faked: the decisions, writes and journal rows are the ones ``aomd run`` would make.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from daemon.cli.command import Subparsers

if TYPE_CHECKING:
    from daemon.settings import Settings

DEMO_PROJECT = "0123456789abcdef0123456789abcdef"
DEMO_ZONE = ZoneInfo("Europe/Berlin")


def add_parser(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the embedded emulator with example policies on an accelerated clock",
        description="The real daemon against the built-in emulator and its demo scenario, "
        "on an accelerated clock, with a throw-away journal; then a summary of what it did "
        "and why. Needs no cloud account and reads no settings file.",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=360.0,
        help="emulated seconds per real second (default: %(default)g)",
    )
    demo.add_argument(
        "--duration", type=float, default=60.0, help="real seconds to run (default: %(default)g)"
    )
    demo.add_argument(
        "--policies",
        type=Path,
        default=None,
        help="policies directory (default: the example policies shipped with aomd, "
        f"{default_policies()})",
    )


def run(args: argparse.Namespace) -> int:
    # the demo is self-contained (embedded emulator, temp journal): --config is not read
    return run_demo(speed=args.speed, duration=args.duration, policies=args.policies)


def demo_start(today: date | None = None) -> datetime:
    """Ten minutes before the next weekly maintenance window of the example policies
    (Tuesdays 22:00-02:00 Europe/Berlin, ``policies/calendars.example.yaml``), so the
    freeze, the re-enable at its end and the 02:30 backup all happen within the demo.

    Tuesdays the example ``change-freeze`` covers anyway are passed over: the year-end
    freeze (mid-December to early January, by a wide margin) and Bavarian public
    holidays on the Tuesday or the Wednesday, when the triggers would stay off."""
    import holidays  # local: the country tables are slow to import

    from daemon.kernel.clock import SystemClock

    day = today or SystemClock().now().astimezone(DEMO_ZONE).date()
    bavaria = holidays.country_holidays("DE", subdiv="BY", years=(day.year, day.year + 1))
    day += timedelta(days=1)
    while (
        day.weekday() != 1
        or (day.month, day.day) >= (12, 10)
        or (day.month, day.day) <= (1, 10)
        or day in bavaria
        or day + timedelta(days=1) in bavaria
    ):
        day += timedelta(days=1)
    return datetime.combine(day, time(21, 50), DEMO_ZONE)


def default_policies() -> Path:
    """The repo's ``policies/`` (editable install), else the copy shipped in the package
    (``daemon/policies`` is a link to it in the repository and package data in a wheel)."""
    package = Path(__file__).resolve().parents[1]
    repo = package.parent / "policies"
    return repo if repo.is_dir() else package / "policies"


def demo_settings(
    *, speed: float, policies: Path | None, state_dir: Path, log_format: str = "console"
) -> Settings:
    from daemon.settings import (
        Account,
        EmulatorSettings,
        HttpSettings,
        LogSettings,
        Settings,
        WatchSettings,
    )

    return Settings(
        accounts=[Account(name="demo", project_id=DEMO_PROJECT, emulator=True)],
        state_dir=state_dir,
        policies_dir=policies or default_policies(),
        log=LogSettings(format=log_format),  # type: ignore[arg-type]  # validated literal
        http=HttpSettings(port=0),
        # Intervals are real seconds; at speed 60 a 1 s poll is one emulated minute.
        watch=WatchSettings(fast_interval=0.5, slow_interval=0.5, discovery_interval=10.0),
        emulator=EmulatorSettings(speed=speed, seed=7, start=demo_start()),
        reconcile_interval=5.0,
    )


def run_demo(*, speed: float = 360.0, duration: float = 60.0, policies: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="aomd-demo-") as tmp:
        settings = demo_settings(speed=speed, policies=policies, state_dir=Path(tmp))
        return asyncio.run(_demo(settings, duration))


async def _demo(settings: Settings, duration: float) -> int:
    from daemon.cli.cmd_history import read_history
    from daemon.cli.embedded import EmbeddedEmulators
    from daemon.engine.app import Daemon

    start = settings.emulator.start
    assert start is not None
    print(
        "aomd demo: the real daemon against the built-in emulator (no cloud account).\n"
        f"  emulated clock: starts {start:%a %Y-%m-%d %H:%M %Z} and runs "
        f"{settings.emulator.speed:g}x (1 real second = {settings.emulator.speed / 60:g} "
        "emulated minutes)\n"
        f"  policies: {settings.policies_dir}\n"
        "  watch for: retries with backoff, a skip fallback, a paused release continued "
        "after the freeze,\n  an overlong batch terminated, cron triggers disabled for the "
        "22:00-02:00 maintenance window\n  and re-enabled after it (the China batch job "
        "too: the freeze beats the CN allow rule),\n  an override keeping logrotate on "
        "until 23:00 (ticket DEMO-1), scheduled runs (DataArts at 23:00,\n  backup at "
        "02:30) and the hourly report blocked by the freeze, caught up once at 02:00.\n",
        flush=True,
    )
    await _grant_demo_override(settings, start)
    emulators = EmbeddedEmulators(settings.emulator)
    daemon = Daemon(settings, start_emulator=emulators.start)
    task = asyncio.create_task(daemon.run())
    done, _ = await asyncio.wait({task}, timeout=duration)
    if not done:
        daemon.request_stop("demo finished")
    rc = await task
    emulator = emulators.started[0] if emulators.started else None
    rows = await read_history(settings, since=None, workflow=None, limit=10_000)
    triggers = (
        {wf.id: wf.trigger_enabled for wf in emulator.world.workflows.values() if wf.cron}
        if emulator
        else {}
    )
    print(render_summary(rows, emulator.changes() if emulator else [], triggers))
    return rc


async def _grant_demo_override(settings: Settings, start: datetime) -> None:
    """What ``aomd override add --workflow wf-cron-logrotate --state on --until 23:00
    --ticket DEMO-1 ...`` journals: logrotate keeps running into the maintenance window
    until 23:00, then the freeze takes it (the override expires by itself)."""
    from daemon.journal.sqlite import SqliteJournal
    from daemon.kernel.overrides import Override

    async with SqliteJournal(settings.journal_path()) as journal:
        await journal.add_override(
            Override(
                id="ov-demo",
                target_kind="workflow",
                target="wf-cron-logrotate",
                state="on",
                start=start.astimezone(UTC),
                until=(start + timedelta(minutes=70)).astimezone(UTC),
                ticket="DEMO-1",
                reason="log volume incident: keep rotating into the maintenance window",
                who="demo",
            ),
            start,
        )


def render_summary(
    rows: list[Any], changes: list[dict[str, Any]], triggers: dict[str, bool] | None = None
) -> str:
    """What aomd did (journal) and what the cloud saw (emulator ledger)."""
    lines = ["", "=== aomd demo: what was done and why ==="]
    header = (
        f"{'time':8} {'workflow':22} {'node':10} {'action':16} {'try':>3} {'outcome':18} reason"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for r in sorted(rows, key=lambda r: r.at):
        at = r.at.astimezone(DEMO_ZONE)
        lines.append(
            f"{at:%a %H:%M} {r.workflow_id[:22]:22} {(r.node_id or '-')[:10]:10} "
            f"{r.kind[:16]:16} {r.attempt:>3} {r.outcome[:18]:18} {r.reason}"
        )
    by_kind = Counter(r.kind for r in rows)
    lines.append("")
    lines.append(
        "actions: " + (", ".join(f"{k}={v}" for k, v in sorted(by_kind.items())) or "none")
    )
    seen = Counter(str(c.get("kind", "?")) for c in changes)
    lines.append(
        "cloud state changes (emulator ledger): "
        + (", ".join(f"{k}={v}" for k, v in sorted(seen.items())) or "none")
    )
    lines.extend(_highlights(rows))
    if triggers:
        lines.append(
            "cron triggers at the end: "
            + ", ".join(f"{k}={'on' if v else 'off'}" for k, v in sorted(triggers.items()))
        )
        lines.append(
            "  (a trigger a person disabled before the freeze stays off: aomd only re-enables "
            "what it disabled itself)"
        )
    return "\n".join(lines)


def _highlights(rows: list[Any]) -> list[str]:
    """The freeze features the demo shows, said in so many words."""
    out = [""]
    denied = sorted(
        {
            r.workflow_id
            for r in rows
            if r.kind == "trigger_disable" and "deny beats allow" in r.reason
        }
    )
    out.append("freeze beat an allow rule (deny beats allow): " + (", ".join(denied) or "none"))
    caught = [r for r in rows if r.key.startswith("catchup/")]
    out.append(
        "catch-up runs after the freeze: "
        + (", ".join(f"{r.rule} {r.outcome}" for r in caught) or "none")
    )
    granted = [r for r in rows if r.kind == "override_add"]
    out.append("overrides: " + ("; ".join(r.reason for r in granted) or "none"))
    return out

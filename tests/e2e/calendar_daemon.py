"""Run the real daemon in a subprocess on an *external* emulator's accelerated clock.

Why: ``aomd run`` against an external emulator uses the system clock, so with an
emulator at speed N the daemon and the cloud disagree about "now" and no calendar test
can be honest. The embedded emulator shares its clock, but dies with the daemon, so a
restart (or ``kill -9``) across a transition would find a brand-new cloud.

This runner builds ``daemon.engine.app.Daemon`` exactly as ``aomd run`` does, but with a
clock that mirrors the emulator's (``EmulatorClock.mirror`` in ``tests.support.clocks``:
``now = anchor + (monotonic - mono) * speed``, from an anchor pair read in the
emulator's process), as long as the test does not change the emulator's speed or
advance it while this daemon runs. Usage::

    python -m tests.e2e.calendar_daemon --config settings.toml \\
        --anchor 2026-03-02T08:00:00+00:00 --mono 12345.678 --speed 120
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from daemon.engine.app import Daemon
from daemon.kernel.errors import ConfigError
from daemon.settings import load_settings
from tests.support.clocks import EmulatorClock


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--anchor", required=True, help="emulated instant (ISO, aware)")
    p.add_argument("--mono", type=float, required=True, help="time.monotonic() at --anchor")
    p.add_argument("--speed", type=float, required=True)
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    clock = EmulatorClock.mirror(datetime.fromisoformat(args.anchor), args.mono, args.speed)
    daemon = Daemon(settings, clock=clock, speed=args.speed)
    return asyncio.run(daemon.run())


if __name__ == "__main__":
    sys.exit(main())

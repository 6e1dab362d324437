"""``aomd run``: the daemon itself, composed here with the embedded emulator when asked."""

from __future__ import annotations

import argparse
import asyncio

from daemon.cli.command import Subparsers


def add_parser(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="run the daemon (watch executions, control triggers)",
        description="Watch executions and apply the execution rules, switch triggers on "
        "calendars and run schedules, until SIGTERM/SIGINT. SIGHUP reloads policies.",
    )
    run.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    run.add_argument("--once", action="store_true", help="one reconcile pass, then exit")


def run(args: argparse.Namespace) -> int:
    from daemon.cli.embedded import EmbeddedEmulators
    from daemon.engine.app import Daemon
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    emulators = EmbeddedEmulators(settings.emulator)
    daemon = Daemon(settings, dry_run=args.dry_run, once=args.once, start_emulator=emulators.start)
    return asyncio.run(daemon.run())

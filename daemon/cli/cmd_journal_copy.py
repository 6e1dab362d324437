"""``aomd journal-copy``: move a replica's SQLite journal into the shared PostgreSQL one.

One command, run once while the daemon is stopped, before switching ``journal.url`` on:
every intent, outcome, claimed trigger, first sighting and schedule tick comes along, so
the replicas that share the journal neither resend a write nor forget a trigger they own.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from daemon.cli.command import Subparsers
from daemon.cli.exit_codes import EXIT_OK


def add_parser(sub: Subparsers) -> None:
    cmd = sub.add_parser(
        "journal-copy",
        help="copy a SQLite journal into the PostgreSQL journal of journal.url",
        description=(
            "Copy every row of a SQLite journal (default: <state_dir>/journal.sqlite3) into "
            "the empty PostgreSQL journal named by journal.url (password from "
            "journal.password_file). Run it once, with the daemon stopped."
        ),
    )
    cmd.add_argument("--from", dest="source", help="the SQLite journal file to copy")


def run(args: argparse.Namespace) -> int:
    from daemon.engine.connect import journal_for
    from daemon.journal.postgres import PostgresJournal, copy_from_sqlite, redact_url
    from daemon.kernel.errors import ConfigError
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    target = journal_for(settings)
    if not isinstance(target, PostgresJournal):
        raise ConfigError(
            "journal.url is not set: name the PostgreSQL journal to copy into "
            '(journal.url = "postgresql://user@host:5432/aomd", password in '
            "journal.password_file)"
        )
    source = Path(args.source) if args.source else settings.state_dir / "journal.sqlite3"
    if not source.is_file():
        raise ConfigError(f"no SQLite journal at {source}: give its path with --from")

    async def copy() -> dict[str, int]:
        try:
            return await copy_from_sqlite(str(source), target)
        finally:
            await target.close()

    counts = asyncio.run(copy())
    rows = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"copied {source} into {redact_url(target.url)}: {rows}")
    return EXIT_OK

"""``aomd history``: what aomd did and why, read from the journal.

Reads the SQLite file read-only, so an operator can run it next to the daemon (WAL lets
both proceed) without write access to the state directory. Output is a table for people
or JSON lines (one intent per line, every journal column) for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from daemon.cli.command import Subparsers
from daemon.cli.instants import parse_instant

if TYPE_CHECKING:
    from daemon.journal.store import HistoryRow
    from daemon.settings import Settings

COLUMNS = ("time", "workflow", "execution", "node", "action", "attempt", "rule", "outcome")
"""Table columns; ``reason`` follows, unpadded, because it is free text."""


def add_parser(sub: Subparsers) -> None:
    hist = sub.add_parser(
        "history",
        help="print what aomd did and why",
        description="Read the journal: every write aomd decided, its outcome and reason.",
    )
    hist.add_argument("--since", help="ISO time or duration like 2h, 7d (default: 24h)")
    hist.add_argument("--workflow", help="only this workflow id")
    hist.add_argument("--json", action="store_true", help="JSON lines output")


def run(args: argparse.Namespace) -> int:
    from daemon.kernel.clock import SystemClock
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    now = SystemClock().now()
    return asyncio.run(
        print_history(
            settings,
            since=parse_instant(args.since or "24h", now, option="--since"),
            workflow=args.workflow,
            as_json=args.json,
        )
    )


async def read_history(
    settings: Settings, *, since: datetime | None, workflow: str | None, limit: int | None
) -> list[HistoryRow]:
    """Journaled intents at or after ``since``, oldest first, from the journal file the
    settings name, opened read-only; the caller checks that the file exists."""
    from daemon.engine.connect import journal_for

    journal = journal_for(settings, readonly=True)
    await journal.open()
    try:
        return list(await journal.history(since, workflow, limit))
    finally:
        await journal.close()


def row_json(row: HistoryRow) -> dict[str, Any]:
    return {
        "at": row.at.isoformat(),
        "key": row.key,
        "action": row.kind,
        "workflow_id": row.workflow_id,
        "execution_id": row.execution_id,
        "node_id": row.node_id,
        "attempt": row.attempt,
        "rule": row.rule,
        "reason": row.reason,
        "outcome": row.outcome,
        "request_id": row.request_id,
        "error": row.error,
        "dry_run": row.dry_run,
        "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
        "tries": row.tries,
        "repeats": row.repeats,
        "first_at": None if row.first_at is None else row.first_at.isoformat(),
    }


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def _folded(row: HistoryRow) -> str:
    """A compacted row stands for ``repeats`` like writes that day (trigger toggles)."""
    if row.repeats <= 1:
        return ""
    first = f" from {_when(row.first_at)}" if row.first_at is not None else ""
    return f" (x{row.repeats}{first} to {_when(row.at)})"


def format_table(rows: Sequence[HistoryRow]) -> list[str]:
    """Aligned lines, header first. A dry-run outcome is marked so it is not mistaken
    for a real write; an error is appended to the reason."""
    cells = [
        (
            _when(r.at),
            r.workflow_id,
            r.execution_id or "-",
            r.node_id or "-",
            r.kind,
            str(r.attempt),
            r.rule or "-",
            r.outcome + (" (dry-run)" if r.dry_run and r.outcome != "dry_run" else ""),
            r.reason + (f" [{r.error}]" if r.error else "") + _folded(r),
        )
        for r in rows
    ]
    header = (*COLUMNS, "reason")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(COLUMNS))]
    return [
        "  ".join([*(c[i].ljust(widths[i]) for i in range(len(COLUMNS))), c[-1]]).rstrip()
        for c in [header, *cells]
    ]


async def print_history(
    settings: Settings,
    *,
    since: datetime | None,
    workflow: str | None,
    as_json: bool,
    limit: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Print journaled intents at or after ``since``; returns the exit code.

    A missing journal file is not an error: aomd simply has not run with this
    configuration yet, which is worth saying plainly instead of a stack of SQLite text.
    """
    stream = out if out is not None else sys.stdout
    from daemon.engine.connect import journal_exists, journal_where

    if not journal_exists(settings):
        print(
            f"no journal at {settings.journal_path()}: aomd has not run with this configuration yet "
            "(set journal.path or state_dir to read another one)",
            file=stream,
        )
        return 0
    rows = await read_history(settings, since=since, workflow=workflow, limit=limit)
    if as_json:
        for row in rows:
            print(json.dumps(row_json(row), ensure_ascii=False), file=stream)
        return 0
    if not rows:
        scope = f" for workflow {workflow}" if workflow else ""
        after = f" since {since.isoformat()}" if since is not None else ""
        print(f"no actions{scope}{after} in {journal_where(settings)}", file=stream)
        return 0
    for line in format_table(rows):
        print(line, file=stream)
    return 0

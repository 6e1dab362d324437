"""Journal size at the retention limit, and how fast ``aomd history`` reads it (issue 17).

Run: .venv/bin/python bench/journal.py [--days 90] [--workflows 2000] [--keep]

Fills a real journal file with ``--days`` days of rows ending now, at the rate of the
issue's soak scaled to ``--workflows`` (at 2,000: an incident every 2 s, each one node
operation row and one sighting; 430 cron triggers toggled every 4 minutes by a calendar,
154,800 trigger rows a day), written day by day in bulk (one transaction a day: the
daemon's path commits one fsync per write, which would take days to replay) with the
rows, keys, reasons and fingerprints the daemon writes. For the last ``--live-days`` (3)
days the trigger rows are written as they come and folded by the real upkeep; before
that, as the upkeep leaves them (one row per workflow, action and day). After each day
the daemon's
hourly upkeep runs as it would (``daemon.engine.retention.upkeep``: prune past
``retention_days`` = 90, fold trigger toggles older than 6 h, incremental vacuum), and
sightings of finished executions are dropped as the handler drops them.

Prints the file size per day and at the end, per 1,000 workflows, and times the real
command ``aomd history --since 7d --workflow X`` (a subprocess, read-only open, median of
5) and the same through ``--json``.

Latest full run (2 cores shared with other jobs, load ~7; 2026-12-01): 198,000 intents a
day (43,200 node operations, 154,800 trigger toggles); filled in 2,322 s; day 90:
3,404.1 MB, 4,004,100 rows; growth 38.21 MB/day = 19.10 MB per day per 1,000 workflows;
``history --since 7d --workflow bulk-17-00003`` 0.664 s median (266 lines, ``aomd
version`` floor 0.113 s), ``--json`` 0.425 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.engine.retention import upkeep
from daemon.journal import SqliteJournal

ROOT = Path(__file__).resolve().parent.parent
INCIDENT_EVERY = 2.0
TOGGLE_EVERY = timedelta(minutes=4)
CRON_SHARE = 430 / 2000
SQL = (
    "INSERT INTO intents (key, kind, workflow_id, execution_id, node_id, attempt, rule, reason,"
    " observed, dry_run, outcome, request_id, error, created_at, finished_at, tries)"
    " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, 0, 'applied', ?, NULL, ?, ?, 1)"
)


def ts(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def day_rows(day: datetime, workflows: int) -> tuple[list[tuple[object, ...]], int]:
    """One day of intents as the daemon journals them; and the sightings it made."""
    rows: list[tuple[object, ...]] = []
    scale = workflows / 2000
    incidents = int(86400 / INCIDENT_EVERY * scale)
    for i in range(incidents):
        at = day + timedelta(seconds=i * 86400 / incidents)
        eid = str(uuid.uuid4())
        wid = f"bulk-17-{i % workflows:05d}"
        ms = int(at.timestamp() * 1000)
        if i % 2:
            kind, node, rule = "restart", "work", "retry-work"
            reason = "node work failed (attempt 1 of 3); restart"
            observed = (
                f'["pausing", "work", "fail", {ms - 10000}, {ms}, "{{\\"attempt\\": 1, '
                '\\"error\\": \\"node work failed on attempt 1\\", \\"exit_code\\": 1}"]'
            )
        else:
            kind, node, rule = "continue", "approve", "continue-approve"
            reason = "node approve paused (attempt 1 of 3); continue"
            observed = f'["pausing", "approve", "pausing", {ms}, null, "{{}}"]'
        rows.append(
            (
                f"exec/{eid}/{node}/{kind}/1",
                kind,
                wid,
                eid,
                node,
                rule,
                reason,
                observed,
                uuid.uuid4().hex,
                ts(at),
                ts(at + timedelta(milliseconds=80)),
            )
        )
    crons = max(1, round(workflows * CRON_SHARE))
    step = 0
    t = day
    while t < day + timedelta(days=1):
        action = "trigger_disable" if step % 2 == 0 else "trigger_enable"
        reason = (
            "calendar soak-freeze active"
            if step % 2 == 0
            else ("calendar soak-freeze ended; re-enabling")
        )
        for w in range(crons):
            wid = f"bulk-17-{w * 3:05d}"
            at = t + timedelta(milliseconds=40 * w)
            rows.append(
                (
                    f"trigger/soak/{wid}/{action}/{at:%Y%m%dT%H%M%S}",
                    action,
                    wid,
                    None,
                    None,
                    "freeze-bulk",
                    reason,
                    "enabled" if step % 2 == 0 else "disabled",
                    uuid.uuid4().hex,
                    ts(at),
                    ts(at + timedelta(milliseconds=60)),
                )
            )
        t += TOGGLE_EVERY
        step += 1
    return rows, incidents


def folded(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The day's trigger rows as compaction leaves them (one per workflow and action, the
    latest kept, counting the rest): what ``upkeep`` makes of them, written directly for
    the days before the last few so 90 days fill in minutes (the last days go through
    the real ``upkeep``; the unit tests check that the two agree)."""
    groups: dict[tuple[object, object], list[tuple[object, ...]]] = {}
    for row in rows:
        if str(row[1]).startswith("trigger_"):
            groups.setdefault((row[2], row[1]), []).append(row)
    return [(*grp[-1], len(grp), grp[0][9]) for grp in groups.values()]


SQL_FOLDED = (
    "INSERT INTO intents (key, kind, workflow_id, execution_id, node_id, attempt, rule, reason,"
    " observed, dry_run, outcome, request_id, error, created_at, finished_at, tries, repeats,"
    " first_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, 0, 'applied', ?, NULL, ?, ?, 1, ?, ?)"
)


def write_settings(tmp: Path, journal: Path) -> Path:
    cfg = tmp / "settings.toml"
    cfg.write_text(
        f'state_dir = "{tmp}"\npolicies_dir = "{tmp}"\n\n[journal]\npath = "{journal}"\n'
    )
    return cfg


def time_history(cfg: Path, workflow: str, *extra: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AOMD_CONFIG", None)
    runs = []
    lines = 0
    for _ in range(5):
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon.cli",
                "--config",
                str(cfg),
                "history",
                "--since",
                "7d",
                "--workflow",
                workflow,
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        runs.append(time.perf_counter() - t0)
        lines = len(out.stdout.splitlines())
    return statistics.median(runs), lines


def cli_floor() -> float:
    """The same interpreter start-up and imports without a journal: what is not the query."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "daemon.cli", "version"],
            capture_output=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


async def fill(
    path: Path, days: int, workflows: int, live_days: int
) -> list[tuple[int, float, int]]:
    """Returns per day (day, MB on disk after upkeep, rows in the journal)."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days - 1)
    sizes: list[tuple[int, float, int]] = []
    async with SqliteJournal(path) as journal:
        since: datetime | None = None
        for d in range(days):
            day = start + timedelta(days=d)
            rows, _ = day_rows(day, workflows)
            live = d >= days - live_days
            with sqlite3.connect(path) as conn:
                if live:
                    conn.executemany(SQL, rows)
                else:
                    conn.executemany(SQL, [r for r in rows if not str(r[1]).startswith("trig")])
                    conn.executemany(SQL_FOLDED, folded(rows))
            conn.close()
            now = day + timedelta(days=1)
            await upkeep(journal, now, days=90, compact_after=timedelta(hours=6), since=since)
            since = now - timedelta(days=2)
            with sqlite3.connect(path) as conn:
                count = conn.execute("SELECT count(*) FROM intents").fetchone()[0]
            conn.close()
            sizes.append((d + 1, journal.size() / 1e6, int(count)))
            if (d + 1) % 10 == 0 or d + 1 == days:
                print(f"  day {d + 1:3d}: {sizes[-1][1]:8.1f} MB, {count:,} rows", flush=True)
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument(
        "--live-days", type=int, default=3, help="last days written raw and folded by upkeep"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aomd-journal-bench-"))
    path = tmp / "journal.sqlite3"
    try:
        raw, incidents = day_rows(datetime(2026, 1, 1, tzinfo=UTC), args.workflows)
        print(
            f"{args.days} days at {args.workflows} workflows: {len(raw):,} intents a day "
            f"({incidents:,} node operations, {len(raw) - incidents:,} trigger toggles)",
            flush=True,
        )
        t0 = time.perf_counter()
        sizes = asyncio.run(fill(path, args.days, args.workflows, args.live_days))
        fill_s = time.perf_counter() - t0
        final_mb = sizes[-1][1]
        per_day = (sizes[-1][1] - sizes[len(sizes) // 2][1]) / max(
            1, len(sizes) - 1 - len(sizes) // 2
        )
        per_1000 = per_day / (args.workflows / 1000)
        print(
            f"filled in {fill_s:.0f} s; file at day {args.days}: {final_mb:.1f} MB "
            f"({sizes[-1][2]:,} rows); growth {per_day:.2f} MB/day "
            f"= {per_1000:.2f} MB per day per 1,000 workflows "
            f"(before this issue: ~195 MB/day at 2,000 workflows, nothing reclaimed)"
        )
        cfg = write_settings(tmp, path)
        floor = cli_floor()
        table, lines = time_history(cfg, "bulk-17-00003")
        as_json, jlines = time_history(cfg, "bulk-17-00003", "--json")
        print(
            f"aomd history --since 7d --workflow bulk-17-00003: {table:.3f} s median of 5 "
            f"({lines} lines; `aomd version` floor {floor:.3f} s, so the query and "
            f"printing take {table - floor:.3f} s); --json {as_json:.3f} s ({jlines} lines)"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: a large real-world-style .ics calendar through validate, reload and plan.

Run: .venv/bin/python bench/ics.py [--events N] [--years N]
Generates an iCalendar of N events (default 6,000, about 1.6 MB: one-off events with
zoned times, all-day holidays written with DTEND equal to DTSTART, weekly RRULEs with
EXDATEs, RECURRENCE-ID overrides), a policy directory whose calendar and schedule both
use it, and times in one process, as the daemon and the CLI do:

- validate: ``load_policy_dir`` the first time (parse + expand);
- reload: ``load_policy_dir`` again with the file unchanged (what SIGHUP or a save of
  another policy file costs);
- plan: every trigger change and scheduled run over ``--years`` years.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from daemon.calendar.plan import plan
from daemon.kernel.model import Workflow
from daemon.policy.loader import load_policy_dir

POLICY = """\
calendars:
  big:
    timezone: Europe/Berlin
    ics: {path: big.ics}
triggers:
  - name: freeze
    select: {names: ["*"]}
    off_during: big
schedules:
  - name: on-events
    ics: {path: big.ics, summary: "Release*"}
    timezone: Europe/Berlin
    action: {execute: {workflow_name: release}}
"""


def generate(events: int, seed: int = 7) -> str:
    rnd = random.Random(seed)
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//aomd//bench ics//EN"]
    day0 = date(2026, 1, 1)
    for i in range(events):
        kind = i % 10
        uid = f"UID:ev-{i}@bench"
        text = "word " * rnd.randint(5, 40)
        day = day0 + timedelta(days=rnd.randint(0, 730))
        if kind == 0:  # a holiday export: DTEND equal to DTSTART
            d = day.strftime("%Y%m%d")
            body = [f"DTSTART;VALUE=DATE:{d}", f"DTEND;VALUE=DATE:{d}", "SUMMARY:Holiday"]
        elif kind == 1:  # weekly with an exception and an override
            start = datetime.combine(day, datetime.min.time()).replace(hour=22)
            body = [
                f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
                f"DTEND;TZID=Europe/Berlin:{start + timedelta(hours=4):%Y%m%dT%H%M%S}",
                "RRULE:FREQ=WEEKLY;COUNT=20",
                f"EXDATE;TZID=Europe/Berlin:{start + timedelta(weeks=2):%Y%m%dT%H%M%S}",
                "SUMMARY:Maintenance",
            ]
        else:
            start = datetime.combine(day, datetime.min.time()).replace(hour=rnd.randint(0, 22))
            body = [
                f"DTSTART:{start:%Y%m%dT%H%M%S}Z",
                f"DTEND:{start + timedelta(minutes=rnd.randint(15, 300)):%Y%m%dT%H%M%S}Z",
                f"SUMMARY:{'Release' if kind == 2 else 'Change'} {i}",
            ]
        out += [
            "BEGIN:VEVENT",
            uid,
            "DTSTAMP:20260101T000000Z",
            *body,
            f"DESCRIPTION:{text.strip()}",
            "END:VEVENT",
        ]
    out.append("END:VCALENDAR")
    return "\r\n".join(out) + "\r\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--years", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        text = generate(args.events)
        (root / "big.ics").write_text(text)
        (root / "policy.yaml").write_text(POLICY)
        print(f"ics: {args.events:,} events, {len(text.encode()) / 1e6:.2f} MB")
        t0 = time.perf_counter()
        policy = load_policy_dir(root)
        t1 = time.perf_counter()
        policy = load_policy_dir(root)
        t2 = time.perf_counter()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        end = start + timedelta(days=365 * args.years)
        wf = [Workflow(id="wf-1", name="nightly", type="cron", tags={}, trigger_status=None)]
        items = plan(
            policy.built_calendars,
            policy.triggers,
            policy.schedules,
            wf,
            start,
            end,
            schedule_sources=policy.schedule_sources,
        )
        t3 = time.perf_counter()
        print(f"validate (first load): {t1 - t0:.2f} s")
        print(f"reload (file unchanged): {t2 - t1:.2f} s")
        print(f"plan {args.years} years: {t3 - t2:.2f} s ({len(items):,} items)")


if __name__ == "__main__":
    main()

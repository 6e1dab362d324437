"""Benchmark: plan one year for 1,000 workflows, 20 calendars, 12 trigger rules, 10 schedules.

Run: .venv/bin/python bench/plan.py [--workflows N] [--repeat N] [--live]
Prints build time, plan time (every row of the streamed plan taken, none kept: first run,
cold calendars; then warm) and when the first row came, row counts and memory
(tracemalloc peak of a plan, and process max RSS). Goals (issue 14, at --workflows
10000): plan < 1 s, RSS < 200 MB. ``--live`` also times ``aomd plan --live`` against the
embedded emulator holding the same workflows: the first row written within 0.3 s.

A full run at --workflows 10000 --repeat 5 --live (2-core shared machine, load ~0.9):
2,797,332 rows; first run 839.5 ms, best fresh run 769.3 ms (first row after 62.1 ms);
20.1 MiB peak traced, 81.7 MiB max RSS; plan --live: 10,000 workflows listed in 15.4 s,
first row after 381 ms (text) and 81 ms (--json). The list-building plan before this
stream: 2.86 s best, 1,714 MiB max RSS on the same machine.
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.calendar import build_calendars, build_schedule_sources
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.calendar.plan import PlanItem, iter_plan
from daemon.kernel.model import Workflow
from daemon.policy.schedule_spec import ScheduleSpec

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//aomd//bench//EN
BEGIN:VEVENT
UID:maint@bench
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260106T220000
DTEND;TZID=Europe/Berlin:20260107T020000
RRULE:FREQ=WEEKLY;BYDAY=TU
EXDATE;TZID=Europe/Berlin:20260113T220000
END:VEVENT
BEGIN:VEVENT
UID:maint@bench
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260120T220000
DTSTART;TZID=Europe/Berlin:20260121T230000
DTEND;TZID=Europe/Berlin:20260122T030000
END:VEVENT
BEGIN:VEVENT
UID:release@bench
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:20260301
DTEND;VALUE=DATE:20260303
RRULE:FREQ=MONTHLY;BYMONTHDAY=1
END:VEVENT
END:VCALENDAR
"""

CALENDARS: dict[str, dict[str, Any]] = {
    "hol-de-by": {"timezone": "Europe/Berlin", "holidays": {"country": "DE", "subdivision": "BY"}},
    "hol-cn": {"timezone": "Asia/Shanghai", "holidays": {"country": "CN"}},
    "hol-us-ny": {
        "timezone": "America/New_York",
        "holidays": {"country": "US", "subdivision": "NY"},
    },
    "hol-gb": {"timezone": "Europe/London", "holidays": {"country": "GB"}},
    "maint-ics": {"timezone": "Europe/Berlin", "ics": {"text": ICS}},
    "freeze-xmas": {
        "timezone": "Europe/Berlin",
        "ranges": [{"start": "2026-12-18T18:00", "end": "2027-01-04T08:00"}],
    },
    "freeze-q-end": {
        "timezone": "UTC",
        "ranges": [
            {"start": f"2026-{m:02d}-28T00:00", "end": f"2026-{m + 1:02d}-02T00:00"}
            for m in (3, 6, 9)
        ],
    },
    "biz-berlin": {
        "timezone": "Europe/Berlin",
        "recurring": [{"cron": "0 9 * * mon-fri", "duration": "9h"}],
    },
    "biz-shanghai": {
        "timezone": "Asia/Shanghai",
        "recurring": [{"cron": "0 9 * * mon-fri", "duration": "9h"}],
    },
    "biz-ny": {
        "timezone": "America/New_York",
        "recurring": [{"cron": "0 8 * * mon-fri", "duration": "10h"}],
    },
    "nights-berlin": {
        "timezone": "Europe/Berlin",
        "recurring": [{"cron": "30 22 * * *", "duration": "7h"}],
    },
    "weekend": {
        "timezone": "Europe/Berlin",
        "recurring": [{"cron": "0 0 * * sat", "duration": "2d"}],
    },
    "patch-tuesday": {
        "timezone": "America/New_York",
        "recurring": [{"cron": "0 13 * * tue", "duration": "6h"}],
    },
    "holidays-any": {"any_of": ["hol-de-by", "hol-cn", "hol-us-ny", "hol-gb"]},
    "no-change": {"any_of": ["holidays-any", "freeze-xmas", "freeze-q-end", "maint-ics"]},
    "work-berlin": {"any_of": ["biz-berlin"], "except": ["hol-de-by", "freeze-xmas"]},
    "work-shanghai": {"any_of": ["biz-shanghai"], "except": ["hol-cn"]},
    "quiet-nights": {"all_of": ["nights-berlin"], "except": ["maint-ics"]},
    "overlap-biz": {"all_of": ["biz-berlin", "biz-ny"]},
    "weekend-or-hol": {"any_of": ["weekend", "hol-de-by"], "except": ["patch-tuesday"]},
}

RULES: list[dict[str, Any]] = [
    {"name": "db-nights", "select": {"tags": {"kind": "db"}}, "on_only_during": "quiet-nights"},
    {"name": "cn-batch", "select": {"tags": {"region": "cn"}}, "off_during": "hol-cn"},
    {"name": "ny-batch", "select": {"tags": {"region": "us"}}, "off_during": "hol-us-ny"},
    {"name": "gb-batch", "select": {"tags": {"region": "gb"}}, "off_during": "hol-gb"},
    {"name": "work-only", "select": {"names": ["report-*"]}, "on_only_during": "work-berlin"},
    {"name": "sh-work", "select": {"names": ["sh-*"]}, "on_only_during": "work-shanghai"},
    {"name": "overlap", "select": {"names": ["sync-*"]}, "on_only_during": "overlap-biz"},
    {"name": "weekend", "select": {"tags": {"team": "web"}}, "off_during": "weekend-or-hol"},
    {"name": "patch", "select": {"names": ["patch-*"]}, "off_during": "patch-tuesday"},
    {"name": "xmas", "select": {"tags": {"team": "fin"}}, "off_during": "freeze-xmas"},
    {
        "name": "ids",
        "select": {"ids": [f"wf-{i:04d}" for i in range(0, 1000, 97)]},
        "off_during": "maint-ics",
    },
    {"name": "everything", "select": {"names": ["*"]}, "off_during": "no-change"},
]

NAMES = ["report", "sh", "sync", "patch", "backup", "etl", "cleanup", "deploy"]
TAGS = [
    {"kind": "db"},
    {"region": "cn"},
    {"region": "us"},
    {"region": "gb"},
    {"team": "web"},
    {"team": "fin"},
    {},
]


def workflows(n: int) -> list[Workflow]:
    return [
        Workflow(
            id=f"wf-{i:04d}",
            name=f"{NAMES[i % len(NAMES)]}-{i}",
            type="cron",
            tags=TAGS[(i // len(NAMES)) % len(TAGS)],
            trigger_status="enable" if i % 3 else "disable",
        )
        for i in range(n)
    ]


def schedules() -> list[ScheduleSpec]:
    out = []
    for i in range(9):
        out.append(
            ScheduleSpec.model_validate(
                {
                    "name": f"s{i}",
                    "cron": ["0 2 * * *", "*/30 * * * *", "15 6 * * mon-fri"][i % 3],
                    "timezone": ["Europe/Berlin", "Asia/Shanghai", "America/New_York"][i % 3],
                    "action": {"execute": {"workflow_name": f"backup-{i}"}}
                    if i % 2
                    else {"dataarts": {"task_id": f"task-{i}", "action": "start"}},
                    "blocked_by": ["no-change", "weekend"][: 1 + i % 2],
                }
            )
        )
    out.append(
        ScheduleSpec.model_validate(
            {
                "name": "ics-runs",
                "ics": {"text": ICS},
                "timezone": "Europe/Berlin",
                "action": {"execute": {"workflow_id": "wf-0001"}},
                "blocked_by": ["hol-de-by"],
            }
        )
    )
    return out


def take(rows: Iterator[PlanItem]) -> float:
    """Take every row as a writer would, one at a time and none kept (at C speed, so the
    figure is the plan's, not this loop's); the seconds to the first row."""
    t0 = time.perf_counter()
    for _ in itertools.islice(rows, 1):
        first = time.perf_counter() - t0
    collections.deque(rows, maxlen=0)
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--live",
        action="store_true",
        help="also time `aomd plan --live` against the embedded emulator holding the "
        "workflows: listing them, then the first and last line written (text and JSON)",
    )
    args = parser.parse_args()
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    wfs = workflows(args.workflows)
    rules = [TriggerRuleSpec.model_validate(r) for r in RULES]
    scheds = schedules()

    t0 = time.perf_counter()
    specs = {k: CalendarSpec.model_validate(v) for k, v in CALENDARS.items()}
    cals = build_calendars(specs, Path("."))
    sources = build_schedule_sources(scheds, Path("."))
    t_build = time.perf_counter() - t0

    # The plan is a stream (iter_plan): every row is made and taken, none is kept.
    t0, c0 = time.perf_counter(), time.process_time()
    first_cold = take(iter_plan(cals, rules, scheds, wfs, start, end, schedule_sources=sources))
    t_cold, c_cold = time.perf_counter() - t0, time.process_time() - c0

    warm: list[tuple[float, float, float]] = []
    for _ in range(args.repeat):
        cals = build_calendars(specs, Path("."))  # fresh calendars: no memo from earlier runs
        t0, c0 = time.perf_counter(), time.process_time()
        first = take(iter_plan(cals, rules, scheds, wfs, start, end, schedule_sources=sources))
        warm.append((time.perf_counter() - t0, time.process_time() - c0, first))
    rss_plan = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    cals = build_calendars(specs, Path("."))
    tracemalloc.start()
    take(iter_plan(cals, rules, scheds, wfs, start, end, schedule_sources=sources))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    kinds: Counter[str] = Counter()
    skipped = 0
    for item in iter_plan(cals, rules, scheds, wfs, start, end, schedule_sources=sources):
        kinds[item.kind] += 1
        skipped += item.skipped
    rows = sum(kinds.values())
    print(
        f"calendars={len(cals)} rules={len(rules)} schedules={len(scheds)} workflows={len(wfs)} period=2026"
    )
    print(
        f"rows={rows} trigger_changes={kinds['trigger']} runs={kinds['run']} skipped_runs={skipped}"
    )
    print(f"build_calendars: {t_build * 1000:.1f} ms (includes spec validation)")
    print(
        f"plan first run, every row taken (lazy holidays imports, cold memo): {t_cold * 1000:.1f} ms "
        f"(CPU {c_cold * 1000:.1f} ms; first row after {first_cold * 1000:.1f} ms)"
    )
    best, worst = min(warm), max(warm)
    print(
        f"plan fresh calendars x{args.repeat}, every row taken: best {best[0] * 1000:.1f} ms "
        f"(CPU {best[1] * 1000:.1f} ms; first row after {best[2] * 1000:.1f} ms), "
        f"worst {worst[0] * 1000:.1f} ms"
    )
    print(f"peak traced memory during plan: {peak / 2**20:.1f} MiB")
    verdict = "met" if max(t_cold, best[0]) < 1.0 else "NOT met"
    print(f"goal plan < 1 s (first run and best fresh run): {verdict}")
    print(
        f"process max RSS after the plans: {rss_plan:.1f} MiB "
        f"(goal < 200 MB: {'met' if rss_plan * 2**20 < 200e6 else 'NOT met'})"
    )
    if args.live:
        live(wfs, scheds)


def live(wfs: list[Workflow], scheds: list[ScheduleSpec]) -> None:
    """``aomd plan --live`` for a year, as the command runs it (``print_plan``'s steps):
    the workflows listed from the embedded emulator (loaded with the same fleet), then
    the plan written to /dev/null, timing its first and last line."""
    import asyncio
    import json
    import tempfile

    from daemon.cli.cmd_plan import (
        iter_mark_live,
        live_workflows,
        make_plan,
        owned_triggers,
        write_plan,
    )
    from daemon.policy import load_policy_dir
    from daemon.settings import load_settings

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "policies").mkdir()
        doc = {
            "calendars": CALENDARS,
            "triggers": RULES,
            "schedules": [s.model_dump(mode="json", exclude_unset=True) for s in scheds],
        }
        (root / "policies" / "bench.yaml").write_text(json.dumps(doc))  # YAML reads JSON
        scenario = {
            "workflows": [
                {
                    "id": wf.id,
                    "name": wf.name,
                    "type": "cron",
                    "cron": "0 3 * * *",
                    "tags": dict(wf.tags),
                    "trigger": wf.trigger_status,
                }
                for wf in wfs
            ]
        }
        (root / "scenario.json").write_text(json.dumps(scenario))
        (root / "settings.toml").write_text(
            f'policies_dir = "{root / "policies"}"\nstate_dir = "{root / "state"}"\n'
            '[[accounts]]\nname = "emu"\nproject_id = "0123456789abcdef0123456789abcdef"\n'
            f'emulator = true\n[emulator]\nscenario = "{root / "scenario.json"}"\n'
        )
        settings = load_settings(root / "settings.toml")
        t0 = time.perf_counter()
        listed = asyncio.run(live_workflows(settings))
        t_list = time.perf_counter() - t0
        owned, held = asyncio.run(owned_triggers(settings))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"plan --live: listed {len(listed)} workflows from the emulator in "
            f"{t_list * 1000:.0f} ms (process max RSS with the emulator's fleet: {rss:.1f} MiB)"
        )
        for as_json in (False, True):
            sink = FirstLine()
            policy = load_policy_dir(settings.policies_dir)  # cold calendars, as a new process
            t0 = time.perf_counter()
            planned = make_plan(policy, listed, start, end)

            def marked(
                rows: Iterator[PlanItem], rules: Any = policy.triggers
            ) -> Iterator[PlanItem]:
                return iter_mark_live(rows, listed, rules, owned, held)

            sink.t0 = t0
            write_plan(planned, marked, sink, as_json=as_json)
            total = time.perf_counter() - t0
            first = sink.first_row if sink.first_row is not None else float("nan")
            verdict = "met" if first < 0.3 else "NOT met"
            print(
                f"plan --live {'--json' if as_json else '(text)'}: first row after "
                f"{first * 1000:.0f} ms (goal < 300 ms: {verdict}), {sink.lines} lines, "
                f"last after {total:.2f} s"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS after plan --live: {rss:.1f} MiB")


class FirstLine(io.StringIO):
    """/dev/null that notes when the first row (the first line after the text table's
    header) was written."""

    def __init__(self) -> None:
        super().__init__()
        self.t0 = 0.0
        self.first_row: float | None = None
        self.lines = 0
        self._header = True

    def write(self, text: str) -> int:
        self.lines += 1
        if self.first_row is None:
            if self._header and text.startswith("TIME (UTC)"):
                self._header = False
            else:
                self.first_row = time.perf_counter() - self.t0
        return len(text)


if __name__ == "__main__":
    main()

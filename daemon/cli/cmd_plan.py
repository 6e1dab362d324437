"""``aomd plan``: every trigger change and scheduled run in a period, without writing.

Without ``--live`` no cloud is called: workflows are unknown, so each trigger rule is
shown once for its selector (``<rule>``), which is what the rule will do to every
workflow it selects. ``--live`` lists the real workflows (read-only calls) and marks the
triggers whose current state differs from what the plan wants at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from daemon.cli.command import Subparsers
from daemon.cli.instants import parse_instant
from daemon.kernel.errors import UsageError

if TYPE_CHECKING:
    from daemon.calendar.calendar_spec import TriggerRuleSpec
    from daemon.calendar.plan import Plan, PlanItem
    from daemon.kernel.model import Workflow
    from daemon.kernel.overrides import Override
    from daemon.policy import PolicySet
    from daemon.settings import Settings


def add_parser(sub: Subparsers) -> None:
    plan = sub.add_parser(
        "plan",
        help="print trigger changes and scheduled runs in a period",
        description="Every trigger change and scheduled run aomd would make between "
        "--from and --until, with the rule and calendar behind each. No cloud calls unless "
        "--live. Times: ISO 8601 (naive = UTC) or a duration (--until 2d = 2 days after "
        "--from).",
    )
    plan.add_argument("--from", dest="start", help="ISO time (default: now)")
    plan.add_argument("--until", dest="end", help="ISO time (default: start + 7 days)")
    plan.add_argument("--json", action="store_true", help="JSON output")
    plan.add_argument("--live", action="store_true", help="compare with current trigger state")
    plan.add_argument(
        "--ics",
        metavar="FILE",
        help="write the plan as an iCalendar file (trigger-off spans, freezes, overrides, "
        "runs, each with its reason) to FILE ('-' = stdout)",
    )
    plan.add_argument(
        "--html",
        metavar="FILE",
        help="write the plan as one self-contained HTML page (a timeline per workflow)",
    )


def run(args: argparse.Namespace) -> int:
    from daemon.kernel.clock import SystemClock
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    now = SystemClock().now()
    start = parse_instant(args.start, now, base=now, option="--from")
    end = parse_instant(args.end, start + timedelta(days=7), base=start, option="--until")
    if end <= start:
        raise UsageError(
            f"--until {end.isoformat()} is not after --from {start.isoformat()}; expected an "
            "end after the start (or a duration: --until 2d)"
        )
    return asyncio.run(
        print_plan(
            settings,
            start,
            end,
            as_json=args.json,
            live=args.live,
            ics=args.ics,
            html_file=args.html,
            now=now,
        )
    )


def placeholder_workflows(rules: Sequence[TriggerRuleSpec]) -> list[Workflow]:
    """One stand-in per rule, built from its selector so the rule selects it."""
    from daemon.kernel.model import Workflow

    out = []
    for rule in rules:
        sel = rule.select
        out.append(
            Workflow(
                id=sel.ids[0] if sel.ids else f"<{rule.name}>",
                name=sel.names[0] if sel.names else f"<{rule.name}>",
                type="cron",
                tags=dict(sel.tags),
                trigger_status=None,
            )
        )
    return out


async def live_workflows(settings: Settings) -> list[Workflow]:
    from daemon.cli.embedded import EmbeddedEmulators
    from daemon.engine.connect import connect
    from daemon.ops.logging import configure_logging

    # the same renderer and timestamp as `aomd run`, not structlog's defaults
    configure_logging(settings.log)
    async with contextlib.AsyncExitStack() as stack:
        emulators = EmbeddedEmulators(settings.emulator)
        cloud = await connect(settings, stack, start_emulator=emulators.start)
        found: list[Workflow] = []
        for acc in cloud.accounts:
            found.extend(await acc.client.list_workflows())
        return found


def make_plan(
    policy: PolicySet,
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
    *,
    workflows_known: bool = True,
    overrides: Sequence[Override] = (),
) -> Plan:
    """The plan, its rows made as they are written (``Plan.rows``)."""
    from daemon.calendar.plan import Plan

    return Plan(
        policy.built_calendars,
        policy.triggers,
        policy.schedules,
        workflows,
        start,
        end,
        schedule_sources=policy.schedule_sources,
        workflows_known=workflows_known,
        overrides=overrides,
    )


def mark_live(
    items: Iterable[PlanItem],
    workflows: Sequence[Workflow],
    rules: Sequence[TriggerRuleSpec],
    owned: set[str],
    held: Collection[str] = (),
) -> list[PlanItem]:
    """``iter_mark_live`` in one list."""
    return list(iter_mark_live(items, workflows, rules, owned, held))


def iter_mark_live(
    items: Iterable[PlanItem],
    workflows: Sequence[Workflow],
    rules: Sequence[TriggerRuleSpec],
    owned: set[str],
    held: Collection[str] = (),
) -> Iterator[PlanItem]:
    """Keep initial-state lines only where the trigger's current state differs, and say
    what aomd will really do about it. A trigger someone else disabled under a
    ``manage: owned`` rule is left alone for the whole period, so its calendar edges are
    dropped too.

    A stream like the plan, nothing held back: whether a trigger is left alone is known
    at its initial-state line, which the plan gives before its other lines."""
    from daemon.calendar.desired import stricter_manage
    from daemon.kernel.workflow_match import workflow_matcher

    state = {wf.id: wf.trigger_enabled for wf in workflows}
    by_id = {wf.id: wf for wf in workflows}
    selects = [
        workflow_matcher(ids=r.select.ids, names=r.select.names, tags=r.select.tags.items())
        for r in rules
    ]

    def manage(wid: str) -> str:
        wf = by_id[wid]
        return stricter_manage([r for r, sel in zip(rules, selects, strict=True) if sel(wf)])

    left_alone: set[str | None] = set()
    seen: set[str | None] = set()
    for item in items:
        wid = item.workflow_id
        if item.kind == "trigger" and item.initial and wid not in seen:
            # A trigger's initial line comes before its other lines (all are at the
            # start, first), and whether it is left alone depends only on its id.
            seen.add(wid)
            if state.get(wid or "") is False and wid not in owned and manage(wid or "") == "owned":
                left_alone.add(wid)
        if item.kind == "trigger" and item.workflow_id in held:
            if item.initial:
                yield item._replace(
                    enable=False,
                    reason="held after a failure streak (pause_after_failures); off "
                    "until a person re-enables it",
                )
            continue
        if item.kind == "trigger" and item.workflow_id in left_alone:
            if item.initial:
                yield item._replace(
                    enable=False,
                    reason="disabled by someone else; aomd leaves it off (manage: owned)",
                )
            continue
        if item.kind == "trigger" and item.initial and item.workflow_id in state:
            current = state[item.workflow_id]
            if current == item.enable:
                continue
            now = "enabled" if current else "disabled"
            verb = "enables" if item.enable else "disables"
            item = item._replace(reason=f"now {now}; aomd {verb} it at once")
        yield item


async def owned_triggers(settings: Settings) -> tuple[set[str], set[str]]:
    """Triggers the journal says aomd disabled, and those held after a failure streak
    (both empty when there is no journal yet)."""
    from daemon.engine.connect import journal_exists, journal_for
    from daemon.engine.trigger_reconciler import HOLDS

    if not journal_exists(settings):
        return set(), set()
    journal = journal_for(settings, readonly=True)
    await journal.open()
    try:
        owned: set[str] = set()
        held: set[str] = set()
        for account in settings.accounts:
            owned |= await journal.owned_triggers(account.name)
            held |= set((await journal.facts(f"{HOLDS}/{account.name}")).first_seen)
        return owned, held
    finally:
        await journal.close()


async def print_plan(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    as_json: bool,
    live: bool,
    ics: str | None = None,
    html_file: str | None = None,
    now: datetime | None = None,
) -> int:
    from daemon.cli.cmd_override import all_overrides
    from daemon.policy import load_policy_dir

    policy = load_policy_dir(settings.policies_dir)
    overrides = await all_overrides(settings)
    marked: Callable[[Iterator[PlanItem]], Iterator[PlanItem]]
    if live:
        workflows = await live_workflows(settings)
        owned, held = await owned_triggers(settings)
        planned = make_plan(policy, workflows, start, end, overrides=overrides)

        def marked(rows: Iterator[PlanItem]) -> Iterator[PlanItem]:
            return iter_mark_live(rows, workflows, policy.triggers, owned, held)

    else:
        workflows = placeholder_workflows(policy.triggers)
        planned = make_plan(
            policy, workflows, start, end, workflows_known=False, overrides=overrides
        )

        def marked(rows: Iterator[PlanItem]) -> Iterator[PlanItem]:
            return rows

    if ics is not None or html_file is not None:
        items = list(marked(planned.rows()))
        return write_views(policy, overrides, items, start, end, ics, html_file, now or start)
    write_plan(planned, marked, sys.stdout, as_json=as_json)
    if not as_json and not live:
        print("(workflows shown as their rule's selector; add --live to list real ones)")
    return 0


def write_plan(
    planned: Plan,
    marked: Callable[[Iterator[PlanItem]], Iterator[PlanItem]],
    out: TextIO,
    *,
    as_json: bool,
) -> None:
    """Write the plan's rows as they are made, so memory does not grow with them: JSON
    one object a line; the text table with its column widths from a first, short pass
    over the distinct rows (``Plan.distinct_rows``), so it is the table of all the rows
    and its first line still comes at once. ``marked`` filters both passes alike."""
    from daemon.calendar.plan import plan_table_lines, plan_table_widths

    if as_json:
        encode = json.JSONEncoder().encode  # the encoder json.dumps uses, made once
        out.writelines(encode(item.to_dict()) + "\n" for item in marked(planned.rows()))
    else:
        widths = plan_table_widths(marked(planned.distinct_rows()))
        lines = plan_table_lines(marked(planned.rows()), widths)
        out.writelines(line + "\n" for line in lines)
    out.flush()


def write_views(
    policy: PolicySet,
    overrides: Sequence[Override],
    items: Sequence[PlanItem],
    start: datetime,
    end: datetime,
    ics: str | None,
    html_file: str | None,
    now: datetime,
) -> int:
    from pathlib import Path

    from daemon.calendar.overrides import apply_calendar_overrides
    from daemon.cli.plan_views import spans, to_html, to_ics

    watched = sorted(
        {r.calendar for r in policy.triggers}
        | {c for s in policy.schedules for c in s.blocked_by}
        | {o.target for o in overrides if o.target_kind == "calendar"}
    )
    calendars = apply_calendar_overrides(policy.built_calendars, overrides)
    bands, marks = spans(items, calendars, watched, start, end)
    if ics is not None:
        data = to_ics(bands, marks, now)
        if ics == "-":
            sys.stdout.buffer.write(data)
        else:
            Path(ics).write_bytes(data)
            print(f"wrote {ics}: {len(bands) + len(marks)} entries", file=sys.stderr)
    if html_file is not None:
        title = f"aomd plan {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC"
        Path(html_file).write_text(to_html(bands, marks, start, end, title), encoding="utf-8")
        print(f"wrote {html_file}", file=sys.stderr)
    return 0

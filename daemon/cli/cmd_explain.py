"""``aomd explain WORKFLOW [--at TIME]``: why its trigger is (or will be) on or off.

Lists the workflows with read-only calls (as ``plan --live``) to learn the workflow's
name, tags and trigger state, then answers offline from the policy, the journal's
overrides and the calendars: rule by rule, with the overrides in force and the next
change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.cli.command import Subparsers
from daemon.cli.instants import parse_instant
from daemon.kernel.errors import ConfigError

if TYPE_CHECKING:
    from daemon.kernel.model import Workflow
    from daemon.settings import Settings


def add_parser(sub: Subparsers) -> None:
    ex = sub.add_parser(
        "explain",
        help="why a workflow's trigger is (or will be) on or off, rule by rule",
        description="Every trigger rule that selects the workflow, what each wants at "
        "--at and why (calendar window), the overrides in force, the combined answer "
        "(deny beats allow) and the next change. Reads the workflows (read-only calls).",
    )
    ex.add_argument("workflow", help="workflow id or exact name")
    ex.add_argument("--at", help="ISO time (naive = UTC) or a duration from now (default: now)")
    ex.add_argument("--json", action="store_true", help="JSON output")


def run(args: argparse.Namespace) -> int:
    from daemon.kernel.clock import SystemClock
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    now = SystemClock().now()
    at = parse_instant(args.at, now, base=now)
    return asyncio.run(_explain(settings, args.workflow, at, as_json=args.json))


def find_workflow(workflows: list[Workflow], wanted: str) -> Workflow:
    for wf in workflows:
        if wanted in (wf.id, wf.name):
            return wf
    names = ", ".join(sorted(wf.name for wf in workflows)[:20]) or "(none)"
    raise ConfigError(f"no workflow with id or name {wanted!r}; workflows: {names}")


async def _explain(settings: Settings, wanted: str, at: datetime, *, as_json: bool) -> int:
    from daemon.calendar.explain import explain_trigger
    from daemon.cli.cmd_override import all_overrides
    from daemon.cli.cmd_plan import live_workflows
    from daemon.policy import load_policy_dir

    policy = load_policy_dir(settings.policies_dir)
    overrides = await all_overrides(settings)
    wf = find_workflow(await live_workflows(settings), wanted)
    found = explain_trigger(
        wf, policy.triggers, policy.built_calendars, overrides, at, policy.trigger_where
    )
    print(json.dumps(found.to_dict()) if as_json else found.render())
    return 0

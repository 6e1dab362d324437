"""``aomd status [--workflow ID] [--json]``: what aomd wants of each workflow now, and why.

Per workflow: the trigger as observed and as wanted, the rules and calendars behind it
(``explain``), the overrides in force, the next transition; and every stopped execution
with what aomd will do about it: held (by a calendar gate or an override, until when),
the next retry attempt, or left for a person. Read-only: lists the cloud, reads the
journal, decides as the daemon would without writing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.cli.command import Subparsers

if TYPE_CHECKING:
    from daemon.kernel.overrides import Override, OverrideTarget
    from daemon.settings import Settings


def add_parser(sub: Subparsers) -> None:
    st = sub.add_parser(
        "status",
        help="per workflow: trigger state and why, overrides, held stops, next retries",
        description="What aomd wants of each workflow now and why (read-only).",
    )
    st.add_argument("--workflow", help="only this workflow (id or exact name)")
    st.add_argument("--json", action="store_true", help="JSON lines output (one per workflow)")


def run(args: argparse.Namespace) -> int:
    from daemon.kernel.clock import SystemClock
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    return asyncio.run(_status(settings, SystemClock().now(), args.workflow, args.json))


def _held_by(active: list[Override], workflow_id: str, rule: str | None) -> Override | None:
    """As the daemon's ``OverrideBook.held``: a workflow's or a rule's hold/off."""
    from daemon.kernel.overrides import latest_for

    pairs: tuple[tuple[OverrideTarget, str | None], ...] = (
        ("workflow", workflow_id),
        ("rule", rule),
    )
    for kind, target in pairs:
        if target is not None:
            found = latest_for(active, kind, target)
            if found is not None and found.state in ("hold", "off"):
                return found
    return None


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


async def _status(settings: Settings, now: datetime, only: str | None, as_json: bool) -> int:
    import contextlib
    import dataclasses

    from daemon.calendar.explain import explain_trigger
    from daemon.calendar.overrides import apply_calendar_overrides
    from daemon.cli.cmd_explain import find_workflow
    from daemon.cli.cmd_override import all_overrides
    from daemon.cli.embedded import EmbeddedEmulators
    from daemon.cli.shard_view import shard_holders
    from daemon.engine.connect import connect, journal_exists, journal_for
    from daemon.journal.memory import MemoryJournal
    from daemon.kernel.errors import AomdError
    from daemon.kernel.overrides import active_overrides
    from daemon.kernel.shards import shard_of
    from daemon.policy import decide, load_policy_dir
    from daemon.policy.decide import stopped_node

    policy = load_policy_dir(settings.policies_dir)
    overrides = await all_overrides(settings)
    active = active_overrides(overrides, now)
    calendars = apply_calendar_overrides(policy.built_calendars, overrides)
    try:
        holders = await shard_holders(settings)
    except AomdError as exc:  # outside the cluster, say: the rest is still worth showing
        print(f"shard holders unavailable: {exc}", file=sys.stderr)
        holders = None
    async with contextlib.AsyncExitStack() as stack:
        journal = (
            journal_for(settings, readonly=True) if journal_exists(settings) else MemoryJournal()
        )
        await stack.enter_async_context(journal)
        owned = await journal.owned_triggers()
        emulators = EmbeddedEmulators(settings.emulator)
        cloud = await connect(settings, stack, start_emulator=emulators.start)
        if holders is not None and not as_json and only is None:
            print(f"shards ({settings.leader.lease_name}):")
            for view in holders:
                print(f"  {view.describe(now)}")
        holder_of = {v.shard: v for v in holders or ()}
        for acc in cloud.accounts:
            workflows = await acc.client.list_workflows()
            if only is not None:
                workflows = [find_workflow(workflows, only)]
            for wf in sorted(workflows, key=lambda w: w.name):
                ex = explain_trigger(
                    wf, policy.triggers, policy.built_calendars, overrides, now,
                    policy.trigger_where,
                )  # fmt: skip
                stops: list[dict[str, Any]] = []
                if policy.watches(wf):
                    for execution in await acc.client.list_executions(wf.id):
                        if execution.finished:
                            continue
                        facts = await journal.facts(execution.execution_id)
                        d = decide(execution, wf, policy.rules, facts, now, calendars)
                        if stopped_node(execution) is None and not d.actions:
                            continue  # running along: nothing to say
                        held = _held_by(active, wf.id, d.rule)
                        until: datetime | None
                        if held is not None:
                            what, until = f"held by {held.describe()}", held.end
                        elif d.held is not None:
                            what, until = f"held: {d.held}", d.held_until
                        elif d.actions:
                            a = d.actions[0]
                            what, until = (
                                f"due now: {a.kind} (attempt {a.attempt}, rule {a.rule})",
                                None,
                            )
                        else:
                            what, until = "; ".join(d.reasons), d.recheck_at
                        stops.append(
                            {
                                "execution_id": execution.execution_id,
                                "node_id": d.node_id,
                                "rule": d.rule,
                                "status": what,
                                "until": _iso(until),
                            }
                        )
                if not ex.managed and not stops and not ex.overrides and only is None:
                    continue
                if (
                    ex.desired is True
                    and ex.observed is False
                    and ex.manage == "owned"
                    and wf.id not in owned
                ):
                    ex = dataclasses.replace(
                        ex,
                        summary=ex.summary
                        + "; but someone else disabled it, and aomd leaves it off (manage: owned)",
                    )
                where: dict[str, Any] = {}
                if holders is not None:
                    shard = shard_of(acc.account.name, wf.id, acc.account.shards)
                    seen = holder_of.get(shard)
                    where = {
                        "shard": shard.label,
                        "shard_holder": seen.holder if seen and seen.live_at(now) else None,
                    }
                if as_json:
                    print(
                        json.dumps(
                            {"account": acc.account.name, **ex.to_dict(), **where, "stops": stops}
                        )
                    )
                    continue
                print(ex.render())
                if where:
                    print(f"  shard {where['shard']}: {where['shard_holder'] or 'nobody holds it'}")
                for s in stops:
                    when = f" until {s['until']}" if s["until"] else ""
                    print(
                        f"  execution {s['execution_id']} at node {s['node_id']}: {s['status']}{when}"
                    )
    return 0

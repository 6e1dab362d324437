"""``aomd override add|list|end``: a person's time-boxed exception, journaled.

Overrides change what aomd does, so they carry authority: the OS user running the
command, a ticket and a reason are journaled with each (``aomd history`` shows them).
They are written to the journal file, not sent to the daemon: the daemon re-reads the
journal's overrides every few seconds, and the ops HTTP server stays read-only. An
override expires by itself at ``--until``, also while the daemon is down.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import secrets
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.cli.command import Subparsers
from daemon.cli.instants import parse_instant
from daemon.kernel.errors import ConfigError

if TYPE_CHECKING:
    from daemon.kernel.overrides import Override
    from daemon.settings import Settings


def add_parser(sub: Subparsers) -> None:
    ov = sub.add_parser(
        "override",
        help="grant, list or end a time-boxed exception to the calendars",
        description="Overrides win over calendars until they expire. on/off force a "
        "workflow's trigger, a rule's vote (or an execution rule past its calendar gate) or "
        "a calendar's activity; hold leaves a workflow (or a rule's workflows) alone, "
        "stopped nodes included. Journaled with the OS user, ticket and reason; a running "
        "daemon picks them up within seconds.",
    )
    ops = ov.add_subparsers(dest="override_command", metavar="ACTION", required=True)
    add = ops.add_parser("add", help="add an override")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--workflow", metavar="ID", help="a workflow id")
    target.add_argument("--rule", metavar="NAME", help="a trigger or execution rule")
    target.add_argument("--calendar", metavar="NAME", help="a calendar")
    add.add_argument("--state", required=True, choices=("on", "off", "hold"))
    add.add_argument(
        "--until", required=True, help="ISO time (naive = UTC) or a duration from now (4h, 2d)"
    )
    add.add_argument("--from", dest="start", help="start later than now (ISO time)")
    add.add_argument("--ticket", required=True, help="change ticket, e.g. CHG-123")
    add.add_argument("--reason", required=True, help="why, for the people who read history")
    add.add_argument("--id", dest="override_id", help="id (default: a random ov-xxxxxx)")
    lst = ops.add_parser("list", help="list overrides in force or to come")
    lst.add_argument("--all", action="store_true", help="also ended and expired ones")
    lst.add_argument("--json", action="store_true", help="JSON lines output")
    end = ops.add_parser("end", help="end an override now")
    end.add_argument("id", help="the override id (see 'override list')")


def run(args: argparse.Namespace) -> int:
    from daemon.kernel.clock import SystemClock
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    now = SystemClock().now()
    if args.override_command == "add":
        return asyncio.run(_add(settings, args, now))
    if args.override_command == "end":
        return asyncio.run(_end(settings, args.id, now))
    return asyncio.run(_list(settings, now, every=args.all, as_json=args.json))


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still say something
        return "unknown-user"


async def _add(settings: Settings, args: argparse.Namespace, now: datetime) -> int:
    from daemon.engine.connect import journal_for
    from daemon.kernel.overrides import Override, OverrideTarget
    from daemon.policy import load_policy_dir

    now = now.replace(microsecond=0)
    start = parse_instant(args.start, now) if args.start else now
    until = parse_instant(args.until, now, base=now).replace(microsecond=0)
    if until <= max(start, now):
        raise ConfigError(f"--until {args.until}: must be in the future and after --from")
    kind: OverrideTarget
    if args.workflow:
        kind, target = "workflow", args.workflow
    elif args.rule:
        kind, target = "rule", args.rule
    else:
        kind, target = "calendar", args.calendar
    if kind == "calendar" and args.state == "hold":
        raise ConfigError("--calendar takes --state on or off; hold is for workflows and rules")
    if not args.ticket.strip() or not args.reason.strip():
        raise ConfigError("--ticket and --reason must not be empty")
    policy = load_policy_dir(settings.policies_dir)
    if kind == "rule":
        names = {r.name for r in policy.rules} | {t.name for t in policy.triggers}
        if target not in names:
            raise ConfigError(
                f"--rule {target}: no such rule; expected one of: {', '.join(sorted(names))}"
            )
    if kind == "calendar" and target not in policy.built_calendars:
        known = ", ".join(sorted(policy.built_calendars))
        raise ConfigError(f"--calendar {target}: no such calendar; expected one of: {known}")
    override = Override(
        id=args.override_id or f"ov-{secrets.token_hex(3)}",
        target_kind=kind,
        target=target,
        state=args.state,
        until=until,
        start=start,
        ticket=args.ticket,
        reason=args.reason,
        who=_who(),
    )
    # the journal the daemon reads: the shared PostgreSQL one when replicas share it
    async with journal_for(settings) as journal:
        await journal.add_override(override, now)
    print(f"added {override.describe()}")
    return 0


async def _end(settings: Settings, override_id: str, now: datetime) -> int:
    from daemon.engine.connect import journal_for
    from daemon.policy import load_policy_dir

    policy = load_policy_dir(settings.policies_dir)
    in_policy = [o for o in policy.overrides if o.id == override_id]
    if in_policy:
        raise ConfigError(
            f"override {override_id} is defined in a policy file ({in_policy[0].who[7:]}); "
            "remove it there"
        )
    async with journal_for(settings) as journal:
        ended = await journal.end_override(override_id, _who(), now)
    if ended is None:
        print(
            f"aomd: no override {override_id!r} (see 'aomd override list --all')", file=sys.stderr
        )
        return 2
    print(f"ended {ended.describe()}")
    return 0


async def all_overrides(settings: Settings) -> list[Override]:
    """The policy files' overrides and the journal's (read-only; none without a journal)."""
    from daemon.engine.connect import journal_exists, journal_for
    from daemon.policy import load_policy_dir

    found = list(load_policy_dir(settings.policies_dir).overrides)
    if journal_exists(settings):
        async with journal_for(settings, readonly=True) as journal:
            found += await journal.overrides()
    return found


async def _list(settings: Settings, now: datetime, *, every: bool, as_json: bool) -> int:
    shown = [o for o in await all_overrides(settings) if every or o.end > now]
    for o in shown:
        if as_json:
            doc = json.loads(o.dumps())
            doc["in_force"] = o.active_at(now)
            print(json.dumps(doc))
        else:
            state = "in force" if o.active_at(now) else ("ended" if o.end <= now else "to come")
            print(f"{o.id}  {state:8}  {o.describe()}")
    if not shown and not as_json:
        print("(no overrides)")
    return 0

"""Things in a valid policy that are almost certainly not what the operator meant.

Not errors (the daemon can run, and a reload must not be refused for them) but not
silence either: ``aomd validate`` prints each as ``warning: ...`` and the daemon logs each
as a ``policy_warning`` event. An empty policies directory watches nothing; a ``.json``
file there is never read; an ``.ics`` file without events never opens a window; a
``notify`` rule with ``notify: false`` never tells anyone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from daemon.calendar.build import ics_event_summaries
from daemon.calendar.calendar_spec import IcsSpec
from daemon.policy.discovery import POLICY_SUFFIXES
from daemon.policy.policyset import PolicySet

__all__ = ["policy_warnings"]

_NOT_IGNORED = (*POLICY_SUFFIXES, ".ics")
"""``.ics`` files sit next to the policies that name them: read, not ignored."""


def policy_warnings(paths: Iterable[Path | str], policy: PolicySet) -> tuple[str, ...]:
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            continue
        entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not any(p.suffix in POLICY_SUFFIXES for p in entries):
            out.append(
                f"{path}: no policy files (*.yaml, *.yml, *.toml): aomd will act on no "
                "execution, trigger or schedule"
            )
        out.extend(
            f"{p}: ignored: policy files end in .yaml, .yml or .toml (rename it, or move it "
            "out of the policies directory)"
            for p in entries
            if p.suffix not in _NOT_IGNORED
        )
    for rule in policy.rules:
        if rule.action == "notify" and rule.notify is False:
            out.append(
                f"{rule.source}: rules {rule.name!r}: action notify with notify: false never "
                "tells anyone; remove 'notify: false' (or use another action)"
            )
    for name, cal in policy.calendars.items():
        if cal.ics is not None:
            out.extend(_empty_ics(cal.ics, f"calendar {name!r}"))
    for sched in policy.schedules:
        if sched.ics is not None:
            out.extend(_empty_ics(sched.ics, f"schedule {sched.name!r}"))
    return tuple(out)


def _empty_ics(spec: IcsSpec, what: str) -> list[str]:
    """One warning when the iCalendar has no event (or none whose SUMMARY matches)."""
    summaries = ics_event_summaries(spec, Path())  # paths are absolute after merging
    if summaries is None:
        return []  # unreadable: already an error of its own
    source = spec.path or "inline text"
    if not summaries:
        return [f"{source}: {what}: the iCalendar has no VEVENT; it will never be active"]
    if spec.summary is not None and not any(
        fnmatch.fnmatchcase(s, spec.summary) for s in summaries
    ):
        return [
            f"{source}: {what}: no VEVENT has a SUMMARY matching {spec.summary!r}; it will "
            "never be active"
        ]
    return []

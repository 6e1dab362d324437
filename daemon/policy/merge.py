"""Every parsed policy file merged into one ``PolicySet``, with the references between them checked.

Names are unique across all files (a duplicate names both places), every calendar a rule,
trigger, schedule or calendar refers to exists (with a "did you mean"), at most one global
webhook is set, and the runtime calendars and schedule iCalendars are built here, so a
policy that merges is one the engine can run.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from daemon.calendar.build import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.calendar.firetimes import build_schedule_sources
from daemon.kernel.errors import ConfigError
from daemon.kernel.overrides import Override
from daemon.policy.file_spec import NotifySpec, PolicyFile
from daemon.policy.overlaps import first_match_warnings
from daemon.policy.policyset import PolicySet
from daemon.policy.rule import Rule
from daemon.policy.schedule_spec import ScheduleSpec
from daemon.policy.source_file import SourceFile, dotted
from daemon.policy.yaml_lines import PathKey

__all__ = ["duplicate_names", "merge_files"]

_SECTION_NOUN = {"rules": "rule", "triggers": "trigger rule", "schedules": "schedule"}


def _absolute_ics(spec: Any, base: Path) -> Any:
    """Make a relative ``ics.path`` absolute so files from several dirs can be merged."""
    ics = spec.ics
    if ics is None or ics.path is None or Path(ics.path).is_absolute():
        return spec
    # absolute(), not base / path: build_calendars joins relative paths to the first
    # file's directory again, so ``aomd validate pol`` read pol/pol/h.ics.
    path = (base / ics.path).absolute()
    return spec.model_copy(update={"ics": ics.model_copy(update={"path": str(path)})})


def duplicate_names(src: SourceFile) -> list[str]:
    """Duplicate names inside one file, read from its raw data (for a file that did not
    validate, so ``merge_files`` never sees it); the same words as ``merge_files``."""
    out: list[str] = []
    data = src.data if isinstance(src.data, dict) else {}
    for section, noun in _SECTION_NOUN.items():
        items = data.get(section)
        if not isinstance(items, list):
            continue  # a schedules mapping cannot repeat a key
        seen: dict[str, str] = {}
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            loc: PathKey = (section, i, "name")
            if name in seen:
                out.append(
                    f"{src.where(loc)}: {section}[{i}].name: duplicate {noun} name {name!r} "
                    f"(also at {seen[name]}; expected unique names)"
                )
            else:
                seen[name] = src.where((section, i))
    return out


def merge_files(
    parsed: list[tuple[SourceFile, PolicyFile]], errors: list[str], files: list[Path]
) -> PolicySet | None:
    """The merged policy, or None after appending every problem found to ``errors``."""
    rules: list[Rule] = []
    rule_where: dict[str, str] = {}
    calendars: dict[str, CalendarSpec] = {}
    cal_where: dict[str, str] = {}
    triggers: list[TriggerRuleSpec] = []
    trig_where: dict[str, str] = {}
    schedules: list[ScheduleSpec] = []
    sched_where: dict[str, str] = {}
    webhook: str | None = None
    overrides: list[tuple[SourceFile, int, Any]] = []
    for src, pf in parsed:
        base = src.path.parent
        for name, cal in pf.calendars.items():
            where = src.where(("calendars", name))
            if name in cal_where:
                errors.append(
                    f"{where}: calendars.{name}: duplicate calendar name (also defined at "
                    f"{cal_where[name]}; expected unique names)"
                )
                continue
            cal_where[name] = where
            calendars[name] = _absolute_ics(cal, base)
        if pf.notify is not None and pf.notify.webhook is not None:
            if webhook is not None and webhook != pf.notify.webhook:
                errors.append(
                    f"{src.where(('notify', 'webhook'))}: notify.webhook: a different global "
                    "webhook is set in another file (expected at most one)"
                )
            webhook = pf.notify.webhook
    known = ", ".join(sorted(calendars)) or "(none defined)"

    def check_cal(src: SourceFile, loc: PathKey, name: str, what: str) -> None:
        if name not in calendars:
            near = difflib.get_close_matches(name, list(calendars), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(
                f"{src.where(loc)}: {dotted(loc)}: {what}: unknown calendar {name!r}{hint}; "
                f"expected one of: {known}"
            )

    for src, pf in parsed:
        for i, spec in enumerate(pf.rules):
            where = src.where(("rules", i))
            if spec.name in rule_where:
                errors.append(
                    f"{src.where(('rules', i, 'name'))}: rules[{i}].name: duplicate rule name "
                    f"{spec.name!r} (also at {rule_where[spec.name]}; expected unique names)"
                )
                continue
            rule_where[spec.name] = where
            if spec.calendar is not None:
                field = "inside" if spec.calendar.inside is not None else "outside"
                check_cal(
                    src, ("rules", i, "calendar", field), spec.calendar.name, f"rule {spec.name!r}"
                )
            for loc, counting in (
                (("rules", i, "delay"), spec.delay_counting),
                (("rules", i, "deadline"), spec.deadline_counting),
                (("rules", i, "backoff", "counting"), spec.backoff.counting),
            ):
                if counting is not None:
                    check_cal(src, loc, counting, f"rule {spec.name!r} counting")
            rules.append(Rule.from_spec(spec, source=where))
        for i, trig in enumerate(pf.triggers):
            if trig.name in trig_where:
                errors.append(
                    f"{src.where(('triggers', i, 'name'))}: triggers[{i}].name: duplicate trigger "
                    f"rule name {trig.name!r} (also at {trig_where[trig.name]}; expected unique "
                    "names)"
                )
                continue
            trig_where[trig.name] = src.where(("triggers", i))
            field = "off_during" if trig.off_during is not None else "on_only_during"
            check_cal(src, ("triggers", i, field), trig.calendar, f"trigger {trig.name!r}")
            triggers.append(trig)
        for i, sched in enumerate(pf.schedules):
            loc_name: PathKey = ("schedules", i)
            if isinstance(src.data.get("schedules"), dict):
                loc_name = ("schedules", sched.name)
            if sched.name in sched_where:
                errors.append(
                    f"{src.where(loc_name)}: {dotted(loc_name)}: duplicate schedule name "
                    f"{sched.name!r} (also at {sched_where[sched.name]}; expected unique names)"
                )
                continue
            sched_where[sched.name] = src.where(loc_name)
            for j, cal_name in enumerate(sched.blocked_by):
                check_cal(src, (*loc_name, "blocked_by", j), cal_name, f"schedule {sched.name!r}")
            if sched.shift is not None:
                field = "avoid" if sched.shift.avoid is not None else "within"
                check_cal(
                    src,
                    (*loc_name, "shift", field),
                    sched.shift.calendar,
                    f"schedule {sched.name!r}",
                )
            schedules.append(_absolute_ics(sched, src.path.parent))
        overrides.extend((src, i, spec) for i, spec in enumerate(pf.overrides))
        for name, cal in pf.calendars.items():
            for field, names in (
                ("any_of", cal.any_of),
                ("all_of", cal.all_of),
                ("except", cal.except_),
            ):
                for j, other in enumerate(names):
                    check_cal(src, ("calendars", name, field, j), other, f"calendar {name!r}")
    found_overrides = _overrides(overrides, rule_where, trig_where, check_cal, errors)
    if errors:
        return None
    base_dir = files[0].parent if files else Path()
    warnings: list[str] = []
    try:
        built = build_calendars(calendars, base_dir, warnings)
    except ConfigError as exc:
        m = re.match(r"calendar '([^']+)'", str(exc))
        where = cal_where.get(m.group(1), "") if m else ""
        errors.append(f"{where}: {exc}" if where else str(exc))
        return None
    try:
        sources = build_schedule_sources(schedules, base_dir, warnings)
    except ConfigError as exc:
        m = re.match(r"schedule '([^']+)'", str(exc))
        where = sched_where.get(m.group(1), "") if m else ""
        errors.append(f"{where}: {exc}" if where else str(exc))
        return None
    return PolicySet(
        rules=tuple(rules),
        calendars=calendars,
        triggers=tuple(triggers),
        schedules=tuple(schedules),
        notify=NotifySpec(webhook=webhook),
        built_calendars=built,
        schedule_sources=sources,
        overrides=found_overrides,
        trigger_where=dict(trig_where),
        warnings=(
            *(_located(w, cal_where, sched_where) for w in warnings),
            *first_match_warnings(triggers, trig_where),
        ),
    )


def _located(warning: str, cal_where: dict[str, str], sched_where: dict[str, str]) -> str:
    """Prefix ``file:line`` of the calendar or schedule the warning is about."""
    m = re.match(r"(calendar|schedule) '([^']+)'", warning)
    if m is None:
        return warning
    where = (cal_where if m.group(1) == "calendar" else sched_where).get(m.group(2))
    return f"{where}: {warning}" if where else warning


def _overrides(
    specs: list[tuple[SourceFile, int, Any]],
    rule_where: dict[str, str],
    trig_where: dict[str, str],
    check_cal: Any,
    errors: list[str],
) -> tuple[Override, ...]:
    """Policy-file overrides: unique ids, and rules and calendars that exist."""
    out: list[Override] = []
    seen: dict[str, str] = {}
    for src, i, spec in specs:
        where = src.where(("overrides", i))
        if spec.id in seen:
            errors.append(
                f"{where}: overrides[{i}].id: duplicate override id {spec.id!r} (also at "
                f"{seen[spec.id]}; expected unique ids)"
            )
            continue
        seen[spec.id] = where
        if spec.rule is not None and spec.rule not in rule_where and spec.rule not in trig_where:
            known = ", ".join(sorted({*rule_where, *trig_where})) or "(none defined)"
            errors.append(
                f"{src.where(('overrides', i, 'rule'))}: overrides[{i}].rule: unknown rule "
                f"{spec.rule!r}; expected one of: {known}"
            )
            continue
        if spec.calendar is not None:
            check_cal(src, ("overrides", i, "calendar"), spec.calendar, f"override {spec.id!r}")
        out.append(spec.to_override(where))
    return tuple(out)

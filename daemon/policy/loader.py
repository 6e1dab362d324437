"""Reading policy files (YAML with line numbers, or TOML) into one ``PolicySet``.

Every problem is reported, not only the first, each as
``policies/retry.yaml:12: rules[0].backoff.factor: Input should be greater than 0
(expected a number > 0)``: an operator fixing a file should need one run of
``aomd validate``, not one per typo. YAML keeps the line of every key and list item
(``_LineLoader``); TOML has no positions in ``tomllib``, so TOML errors name the file and
the field only.
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from daemon.calendar.build import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec, ScheduleSpec, TriggerRuleSpec
from daemon.calendar.firetimes import build_schedule_sources
from daemon.kernel.errors import ConfigError, PolicyError
from daemon.policy.file_spec import NotifySpec, PolicyFile, RuleSpec
from daemon.policy.policyset import PolicySet
from daemon.policy.rule import Rule

__all__ = [
    "POLICY_SUFFIXES",
    "json_schema",
    "load_policy_dir",
    "load_policy_paths",
    "validate_paths",
]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")
PathKey = tuple[str | int, ...]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that also records the 1-based line of every mapping key and list item."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[PathKey, int] = {}
        self.duplicates: list[tuple[PathKey, int]] = []

    def record(self, node: yaml.Node, path: PathKey) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, value_node in node.value:
                key: object = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str) or key == "<<":
                    continue
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self._record_children(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self._record_children(item, (*path, i))

    def _record_children(self, node: yaml.Node, path: PathKey) -> None:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.record(node, path)


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    data: Any
    lines: Mapping[PathKey, int] | None
    """None for TOML (no positions available)."""

    def where(self, loc: PathKey = ()) -> str:
        if self.lines is None:
            return str(self.path)
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return f"{self.path}:{line}"
        return f"{self.path}:1"


def _read(path: Path, errors: list[str]) -> _Source | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read file ({exc}); expected a readable UTF-8 text file")
        return None
    if path.suffix == ".toml":
        try:
            return _Source(path, tomllib.loads(text), None)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            where = f"{path}:{m.group(1)}" if m else str(path)
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            errors.append(f"{where}: TOML syntax error: {msg} (expected valid TOML)")
            return None
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        if node is not None:
            loader.record(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        errors.append(f"{where}: YAML syntax error: {problem} (expected valid YAML)")
        return None
    except yaml.YAMLError as exc:
        errors.append(f"{path}: YAML error: {exc} (expected valid YAML)")
        return None
    finally:
        loader.dispose()
    for dup, line in loader.duplicates:
        errors.append(
            f"{path}:{line}: {_dotted(dup)}: duplicate key (expected each key once; the "
            "later one would silently replace the earlier)"
        )
    return _Source(path, {} if data is None else data, loader.lines)


# -- pydantic error -> one readable line ----------------------------------------------


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _data_loc(data: Any, loc: Sequence[str | int]) -> PathKey:
    """The part of a pydantic ``loc`` that names data (drops union/validator tags)."""
    out: list[str | int] = []
    current: Any = data
    for i, part in enumerate(loc):
        in_map = isinstance(current, Mapping) and part in current
        in_list = isinstance(current, list) and type(part) is int and 0 <= part < len(current)
        if in_map or in_list:
            out.append(part)
            current = current[part]
        elif isinstance(current, Mapping) and i == len(loc) - 1 and isinstance(part, str):
            out.append(part)  # a missing or an unknown field
    return tuple(out)


def _model_fields_at(loc: PathKey) -> list[str] | None:
    """Field names allowed at ``loc`` (the parent of an unknown key), best effort."""
    annotation: Any = PolicyFile
    for part in loc:
        model = _find_model(annotation)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            continue
        inner = _container_item(annotation)
        if inner is None:
            return None
        annotation = inner
    model = _find_model(annotation)
    if model is None:
        return None
    return [f.alias or name for name, f in model.model_fields.items()]


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _container_item(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            inner = _container_item(arg)
            if inner is not None:
                return inner
        return None
    if origin in (tuple, list) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


_EXPECT: dict[str, str] = {
    "missing": "expected this field to be set",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string (quote it)",
    "dict_type": "expected a mapping of key: value",
    "model_type": "expected a mapping of key: value",
    "model_attributes_type": "expected a mapping of key: value",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "time_delta_parsing": "expected a duration such as '30s', '10m', '1h30m' or seconds",
    "time_delta_type": "expected a duration such as '30s', '10m', '1h30m' or seconds",
    "datetime_parsing": "expected an ISO 8601 date-time such as 2026-12-24T18:00:00",
    "datetime_type": "expected an ISO 8601 date-time such as 2026-12-24T18:00:00",
    "string_pattern_mismatch": "expected letters, digits, '_', '.', ':' or '-'",
    "string_too_short": "expected a non-empty value",
    "too_short": "expected at least one item",
}


def _expected(err: Mapping[str, Any], loc: PathKey) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"expected a number {op} {bound}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}"
    if kind == "extra_forbidden":
        allowed = _model_fields_at(loc[:-1])
        if allowed:
            name = str(loc[-1]) if loc else ""
            near = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            return f"expected one of: {', '.join(allowed)}{hint}"
        return "expected no such field"
    return _EXPECT.get(kind, "")


def _format_error(src: _Source, err: Mapping[str, Any], prefix: PathKey = ()) -> str:
    loc = _data_loc(src.data, (*prefix, *err["loc"]))
    msg = str(err["msg"])
    for strip in ("Value error, ", "Assertion failed, "):
        if msg.startswith(strip):
            msg = msg[len(strip) :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "literal_error":
        msg = f"invalid value {err.get('input')!r}"
    expected = _expected(err, loc)
    if expected and "expected" not in msg:
        msg = f"{msg} ({expected})"
    return f"{src.where(loc)}: {_dotted(loc)}: {msg}"


def _format_errors(src: _Source, exc: ValidationError) -> list[str]:
    """One line per problem, sorted by line. Of the errors a union field produces (one
    per member type), only our own explanations (``value_error``) are kept when present:
    ``notify: ftp://x`` should say "invalid webhook URL", not also "not a boolean"."""
    by_loc: dict[PathKey, list[Any]] = {}
    for err in exc.errors():
        by_loc.setdefault(_data_loc(src.data, err["loc"]), []).append(err)
    lines: list[tuple[int, str]] = []
    for loc, errs in by_loc.items():
        if len({e["loc"] for e in errs}) > 1:
            own = [e for e in errs if e["type"] == "value_error"]
            errs = own or errs
        for err in errs:
            where = src.where(loc)
            line = int(where.rsplit(":", 1)[1]) if src.lines is not None else 0
            lines.append((line, _format_error(src, err)))
    return [text for _, text in sorted(lines, key=lambda x: x[0])]


# -- loading ----------------------------------------------------------------------------


def _files(paths: Iterable[Path | str], errors: list[str]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                (p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file()),
                key=lambda p: p.name,
            )
        elif path.is_file():
            if path.suffix not in POLICY_SUFFIXES:
                errors.append(
                    f"{path}: not a policy file (expected a .yaml, .yml or .toml file or a "
                    "directory of them)"
                )
                continue
            found = [path]
        else:
            errors.append(f"{path}: no such file or directory (expected a policy file or dir)")
            continue
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def _absolute_ics(spec: Any, base: Path) -> Any:
    """Make a relative ``ics.path`` absolute so files from several dirs can be merged."""
    ics = spec.ics
    if ics is None or ics.path is None or Path(ics.path).is_absolute():
        return spec
    return spec.model_copy(update={"ics": ics.model_copy(update={"path": str(base / ics.path)})})


def load_policy_paths(paths: Iterable[Path | str]) -> PolicySet:
    """Load and merge files and directories; raise ``PolicyError`` listing every problem."""
    errors: list[str] = []
    files = _files(paths, errors)
    parsed: list[tuple[_Source, PolicyFile]] = []
    for path in files:
        src = _read(path, errors)
        if src is None:
            continue
        if not isinstance(src.data, dict):
            errors.append(
                f"{src.where()}: (top level): a policy file must be a mapping (expected keys "
                "rules, calendars, triggers, schedules, notify)"
            )
            continue
        try:
            parsed.append((src, PolicyFile.model_validate(src.data)))
        except ValidationError as exc:
            errors.extend(_format_errors(src, exc))
    policy = _merge(parsed, errors, files)
    if errors:
        raise PolicyError(errors, source=", ".join(str(f) for f in files) or None)
    assert policy is not None
    return policy


def _merge(
    parsed: list[tuple[_Source, PolicyFile]], errors: list[str], files: list[Path]
) -> PolicySet | None:
    rules: list[Rule] = []
    rule_specs: list[RuleSpec] = []
    rule_where: dict[str, str] = {}
    calendars: dict[str, CalendarSpec] = {}
    cal_where: dict[str, str] = {}
    triggers: list[TriggerRuleSpec] = []
    trig_where: dict[str, str] = {}
    schedules: list[ScheduleSpec] = []
    sched_where: dict[str, str] = {}
    webhook: str | None = None
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

    def check_cal(src: _Source, loc: PathKey, name: str, what: str) -> None:
        if name not in calendars:
            near = difflib.get_close_matches(name, list(calendars), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(
                f"{src.where(loc)}: {_dotted(loc)}: {what}: unknown calendar {name!r}{hint}; "
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
            rule_specs.append(spec)
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
                    f"{src.where(loc_name)}: {_dotted(loc_name)}: duplicate schedule name "
                    f"{sched.name!r} (also at {sched_where[sched.name]}; expected unique names)"
                )
                continue
            sched_where[sched.name] = src.where(loc_name)
            for j, cal_name in enumerate(sched.blocked_by):
                check_cal(src, (*loc_name, "blocked_by", j), cal_name, f"schedule {sched.name!r}")
            schedules.append(_absolute_ics(sched, src.path.parent))
        for name, cal in pf.calendars.items():
            for field, names in (
                ("any_of", cal.any_of),
                ("all_of", cal.all_of),
                ("except", cal.except_),
            ):
                for j, other in enumerate(names):
                    check_cal(src, ("calendars", name, field, j), other, f"calendar {name!r}")
    if errors:
        return None
    base_dir = files[0].parent if files else Path()
    try:
        built = build_calendars(calendars, base_dir)
    except ConfigError as exc:
        m = re.match(r"calendar '([^']+)'", str(exc))
        where = cal_where.get(m.group(1), "") if m else ""
        errors.append(f"{where}: {exc}" if where else str(exc))
        return None
    try:
        sources = build_schedule_sources(schedules, base_dir)
    except ConfigError as exc:
        m = re.match(r"schedule '([^']+)'", str(exc))
        where = sched_where.get(m.group(1), "") if m else ""
        errors.append(f"{where}: {exc}" if where else str(exc))
        return None
    return PolicySet(
        rules=tuple(rules),
        rule_specs=tuple(rule_specs),
        calendars=calendars,
        triggers=tuple(triggers),
        schedules=tuple(schedules),
        notify=NotifySpec(webhook=webhook),
        built_calendars=built,
        schedule_sources=sources,
        files=tuple(files),
    )


def load_policy_dir(path: Path | str) -> PolicySet:
    """Load a policy directory (``*.yaml``, ``*.yml``, ``*.toml``, sorted by name) or one file."""
    return load_policy_paths([path])


def validate_paths(paths: Iterable[Path | str]) -> int:
    """``aomd validate``: print a summary (stdout) or every error (stderr); exit code 0 / 2."""
    try:
        policy = load_policy_paths(paths)
    except PolicyError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        count = len(exc.errors)
        print(f"aomd: {count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"ok: {policy.summary()}")
    return 0


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one policy file, for editors and ``aomd schema``."""
    schema = PolicyFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://aomd.example/policy.schema.json",
        **schema,
    }

"""Pydantic validation errors -> one readable line each: ``file:line: field: message (expected ...)``.

Pydantic names a problem by its path through the models, including union members and
validator tags an operator never wrote, and says what was wrong but rarely what would be
right. These lines name the field as written in the file, at the line it is on, and say
what was expected (with a "did you mean" for misspelt keys), because they are all an
operator fixing a file sees.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from daemon.policy.file_spec import PolicyFile
from daemon.policy.source_file import SourceFile, dotted
from daemon.policy.yaml_lines import PathKey

__all__ = ["format_errors"]


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


def _format_error(src: SourceFile, err: Mapping[str, Any]) -> str:
    loc = _data_loc(src.data, err["loc"])
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
    return f"{src.where(loc)}: {dotted(loc)}: {msg}"


def format_errors(src: SourceFile, exc: ValidationError) -> list[str]:
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

"""One policy file read into plain data, with the line of each part where the format has one.

Syntax errors become messages in the ``file:line: problem (expected ...)`` form of every
other policy problem, so ``aomd validate`` reports them alongside, not instead of, the rest.
TOML has no positions in ``tomllib``, so TOML messages name the file and the field only.

Hostile input ends here too, as a message and never as a traceback or a hang: only
regular files of at most ``MAX_POLICY_BYTES`` are read, YAML nesting and aliases are
bounded before anything is expanded (``yaml_lines``), and TOML nested deeper than Python's
recursive parser can follow is reported as such.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.kernel.files import UnreadableFile, read_bounded
from daemon.policy.yaml_lines import MAX_DEPTH, LineLoader, PathKey, YamlLimitError

__all__ = ["MAX_POLICY_BYTES", "SourceFile", "dotted", "read_source_file"]

MAX_POLICY_BYTES = 4 << 20
"""4 MiB: a thousand commented rules are about 1 MiB."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    data: Any
    lines: Mapping[PathKey, int] | None
    """None for TOML (no positions available)."""

    def where(self, loc: PathKey = ()) -> str:
        """``file:line`` of ``loc``, or of its nearest enclosing part that has a line."""
        if self.lines is None:
            return str(self.path)
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return f"{self.path}:{line}"
        return f"{self.path}:1"


def dotted(loc: Sequence[str | int]) -> str:
    """``rules[0].backoff.factor``: a path as the operator would write it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def read_source_file(path: Path, errors: list[str]) -> SourceFile | None:
    """The parsed file, or None after appending why it cannot be read to ``errors``."""
    try:
        raw = read_bounded(path, MAX_POLICY_BYTES)
    except UnreadableFile as exc:
        errors.append(f"{path}: cannot read policy file: {exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        errors.append(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); expected a UTF-8 encoded policy file"
        )
        return None
    if path.suffix == ".toml":
        return _read_toml(path, text, errors)
    try:
        loader = LineLoader(text)  # checks every character: may raise ReaderError
    except yaml.YAMLError as exc:
        return _yaml_error(path, exc, errors, text)
    try:
        node = loader.get_single_node()
        if node is not None:
            loader.check_expansion(node)
        data = loader.construct_document(node) if node is not None else None
        if node is not None:
            loader.record(node, ())
    except YamlLimitError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        errors.append(f"{where}: YAML refused: {exc.problem}")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        errors.append(f"{where}: YAML syntax error: {problem} (expected valid YAML)")
        return None
    except yaml.YAMLError as exc:
        return _yaml_error(path, exc, errors, text)
    finally:
        loader.dispose()
    for dup, line in loader.duplicates:
        errors.append(
            f"{path}:{line}: {dotted(dup)}: duplicate key (expected each key once; the "
            "later one would silently replace the earlier)"
        )
    return SourceFile(path, {} if data is None else data, loader.lines)


def _read_toml(path: Path, text: str, errors: list[str]) -> SourceFile | None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        errors.append(f"{where}: TOML syntax error: {msg} (expected valid TOML)")
        return None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        errors.append(
            f"{path}: TOML nested too deeply to parse; expected at most {MAX_DEPTH} levels"
        )
        return None
    if _too_deep(data, MAX_DEPTH):
        errors.append(f"{path}: TOML nested deeper than {MAX_DEPTH} levels; expected less")
        return None
    return SourceFile(path, data, None)


def _too_deep(data: Any, limit: int) -> bool:
    """Iteratively, so the check cannot overflow the stack it protects."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def _yaml_error(path: Path, exc: yaml.YAMLError, errors: list[str], text: str) -> SourceFile | None:
    """A NUL or another control character (``ReaderError``), or another YAML error."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        errors.append(
            f"{path}:{line}: YAML error: control character #x{exc.character:04x} at offset "
            f"{exc.position} (expected printable text; quote it as an escape such as \\x00)"
        )
        return None
    detail = " ".join(str(exc).split())
    errors.append(f"{path}: YAML error: {detail} (expected valid YAML text)")
    return None

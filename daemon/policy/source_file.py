"""One policy file read into plain data, with the line of each part where the format has one.

Syntax errors become messages in the ``file:line: problem (expected ...)`` form of every
other policy problem, so ``aomd validate`` reports them alongside, not instead of, the rest.
TOML has no positions in ``tomllib``, so TOML messages name the file and the field only.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.policy.yaml_lines import LineLoader, PathKey

__all__ = ["SourceFile", "dotted", "read_source_file"]


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read file ({exc}); expected a readable UTF-8 text file")
        return None
    if path.suffix == ".toml":
        try:
            return SourceFile(path, tomllib.loads(text), None)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            where = f"{path}:{m.group(1)}" if m else str(path)
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            errors.append(f"{where}: TOML syntax error: {msg} (expected valid TOML)")
            return None
    loader = LineLoader(text)
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
            f"{path}:{line}: {dotted(dup)}: duplicate key (expected each key once; the "
            "later one would silently replace the earlier)"
        )
    return SourceFile(path, {} if data is None else data, loader.lines)

"""Which files a list of policy paths names: each file as given, each directory's policy files.

A directory is read in file-name order, which is the documented merge order (rules keep
file order, first match wins), and a file named twice is read once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["POLICY_SUFFIXES", "policy_files"]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")


def policy_files(paths: Iterable[Path | str], errors: list[str]) -> list[Path]:
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

"""Which files a list of policy paths names: each file as given, each directory's policy files.

A directory is read in file-name order, which is the documented merge order (rules keep
file order, first match wins), and a file named twice is read once. An entry with a
policy suffix that is not a regular file (a dangling symlink, a FIFO, a directory named
``x.yaml``) is an error, not silently skipped: the operator meant it to be a policy.
Editor lock files (``.#name.yaml``, emacs's dangling symlinks) are the one exception.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["POLICY_SUFFIXES", "policy_files"]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def _mode(path: Path) -> int | str:
    """``st_mode`` following symlinks, or why the path cannot be used."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "a dangling symbolic link (its target does not exist)"
        return "no such file or directory"
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, EACCES, a NUL in the name
        return exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-60:]} ({len(text):,} characters)"


def policy_files(paths: Iterable[Path | str], errors: list[str]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        mode = _mode(path)
        if isinstance(mode, str):
            errors.append(f"{_shown(path)}: {mode} (expected a policy file or a directory of them)")
            continue
        if stat.S_ISDIR(mode):
            found = []
            try:
                entries = sorted(path.iterdir(), key=lambda p: p.name)
            except OSError as exc:
                errors.append(f"{path}: cannot list directory ({exc.strerror or exc})")
                continue
            for entry in entries:
                if entry.suffix not in POLICY_SUFFIXES or entry.name.startswith(".#"):
                    continue
                kind = _mode(entry)
                if isinstance(kind, int) and stat.S_ISREG(kind):
                    found.append(entry)
                    continue
                what = kind if isinstance(kind, str) else _KINDS.get(stat.S_IFMT(kind), "special")
                errors.append(
                    f"{entry}: {what}, not a policy file (expected a regular .yaml, .yml or "
                    ".toml file; remove or rename it)"
                )
        elif stat.S_ISREG(mode):
            if path.suffix not in POLICY_SUFFIXES:
                errors.append(
                    f"{path}: not a policy file (expected a .yaml, .yml or .toml file or a "
                    "directory of them)"
                )
                continue
            found = [path]
        else:
            what = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            errors.append(f"{path}: {what} (expected a policy file or a directory of them)")
            continue
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out

"""Reading policy files (YAML with line numbers, or TOML) into one ``PolicySet``.

Every problem is reported, not only the first, each as
``policies/retry.yaml:12: rules[0].backoff.factor: Input should be greater than 0
(expected a number > 0)``: an operator fixing a file should need one run of
``aomd validate``, not one per typo. The steps live beside this one: ``discovery`` (which
files), ``source_file`` (text -> data with lines), ``messages`` (validation errors ->
lines) and ``merge`` (one policy, references checked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from daemon.kernel.errors import PolicyError
from daemon.policy.discovery import policy_files
from daemon.policy.file_spec import PolicyFile
from daemon.policy.merge import duplicate_names, merge_files
from daemon.policy.messages import format_errors
from daemon.policy.policyset import PolicySet
from daemon.policy.source_file import SourceFile, read_source_file
from daemon.policy.warnings import policy_warnings

__all__ = ["load_policy_dir", "load_policy_paths"]


def load_policy_paths(paths: Iterable[Path | str]) -> PolicySet:
    """Load and merge files and directories; raise ``PolicyError`` listing every problem."""
    errors: list[str] = []
    paths = list(paths)
    files = policy_files(paths, errors)
    parsed: list[tuple[SourceFile, PolicyFile]] = []
    for path in files:
        src = read_source_file(path, errors)
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
            errors.extend(format_errors(src, exc))
            # merge checks names only of files that validated: a bad field must not hide
            # a duplicate name in the same file
            errors.extend(duplicate_names(src))
    policy = merge_files(parsed, errors, files)
    if errors:
        raise PolicyError(errors, source=", ".join(str(f) for f in files) or None)
    assert policy is not None
    return dataclasses.replace(policy, warnings=(*policy.warnings, *policy_warnings(paths, policy)))


def load_policy_dir(path: Path | str) -> PolicySet:
    """Load a policy directory (``*.yaml``, ``*.yml``, ``*.toml``, sorted by name) or one file."""
    return load_policy_paths([path])

"""``match.output_regex``: patterns that run in linear time on bounded text, or are rejected.

``decide`` runs inside the event loop, so one pattern with catastrophic backtracking
(``(a+)+$`` takes 0.8 s on 24 characters with Python's ``re``, doubling per character)
would freeze every reconciler. RE2 (google-re2) matches in time linear in the text and
refuses, at compile time, the features that need backtracking (backreferences,
lookarounds), so such a pattern is a validation error with the reason, never a stall. The
text searched is capped as well, so a node printing megabytes costs microseconds.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_PATTERN_CHARS",
    "OutputRegex",
    "RegexRejected",
    "compile_output_regex",
]

MAX_OUTPUT_CHARS = 65_536
"""Longer node output is searched in its first and last half of this (errors are usually
printed at the end, commands at the start)."""
MAX_PATTERN_CHARS = 4_096
_MAX_PROGRAM_BYTES = 8 << 20
"""RE2's own memory budget for one compiled pattern (its default); bigger ones fail."""


class RegexRejected(ValueError):
    """The pattern is invalid or needs a feature RE2 cannot run in linear time."""


def _options() -> Any:
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print every rejected pattern to stderr itself
    opts.max_mem = _MAX_PROGRAM_BYTES
    return opts


_OPTIONS = _options()
_BACKTRACKING_HINTS = (
    ("invalid escape sequence: \\", "backreferences (\\1) and escapes such as \\Z"),
    ("invalid perl operator: (?=", "lookahead (?=...)"),
    ("invalid perl operator: (?!", "negative lookahead (?!...)"),
    ("invalid perl operator: (?<", "lookbehind (?<=...) / (?<!...)"),
    ("invalid perl operator: (?>", "atomic groups (?>...)"),
    ("bad repetition operator: *+", "possessive quantifiers"),
    ("bad repetition operator: ++", "possessive quantifiers"),
    ("invalid repetition size", "repetition counts over 1000 (nested counts multiply)"),
    ("pattern too large", "patterns whose compiled form exceeds 8 MiB"),
)


class OutputRegex:
    """A compiled pattern; ``search`` answers in time linear in at most 64 KiB of text."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def search(self, text: str) -> bool:
        try:
            return self._search(text)
        except UnicodeEncodeError:  # lone surrogates from a JSON "\\ud800" escape
            return self._search(text.encode("utf-8", "replace").decode("utf-8"))

    def _search(self, text: str) -> bool:
        if len(text) > MAX_OUTPUT_CHARS:
            half = MAX_OUTPUT_CHARS // 2
            return self._search(text[:half]) or self._search(text[-half:])
        if self._compiled.search(text) is not None:
            return True
        # Python's '$' also matches before a final newline, RE2's only at the very end;
        # node output usually ends with one, so 'failed$' must keep matching "failed\n".
        return text.endswith("\n") and self._compiled.search(text[:-1]) is not None

    def __repr__(self) -> str:
        return f"OutputRegex({self.pattern!r})"


def compile_output_regex(pattern: str) -> OutputRegex:
    """The compiled pattern, or ``RegexRejected`` saying what is wrong and why."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RegexRejected(
            f"regular expression of {len(pattern)} characters is too long; expected at most "
            f"{MAX_PATTERN_CHARS}"
        )
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except UnicodeEncodeError:
        raise RegexRejected(
            "regular expression contains a lone surrogate character; expected valid Unicode"
        ) from None
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        reason = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        feature = next((f for marker, f in _BACKTRACKING_HINTS if marker in reason), None)
        shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
        if feature is not None:
            raise RegexRejected(
                f"regular expression {shown!r} is not accepted ({reason}): node output is "
                f"matched with RE2, which runs in linear time so no pattern can stall the "
                f"daemon, and does not support {feature}; expected an RE2 pattern such as "
                "'(?i)timeout|connection reset'"
            ) from None
        raise RegexRejected(
            f"invalid regular expression {shown!r} ({reason}); expected an RE2 pattern such "
            "as 'disk (full|quota)'"
        ) from None
    return OutputRegex(pattern, compiled)

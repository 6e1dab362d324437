"""``match.output_regex`` cannot stall the loop: RE2, bounded text, backtracking refused.

With Python's ``re``, ``(a+)+$`` over 24 characters of output took 0.8 s and every extra
character doubled it, inside the event loop (issue #18).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pydantic import ValidationError

from daemon.policy import RuleSpec, decide
from daemon.policy.output_regex import MAX_OUTPUT_CHARS, RegexRejected, compile_output_regex
from tests.support.decisions import T0, WORKFLOW, execution, facts, rule


def test_catastrophic_pattern_decides_in_linear_time() -> None:
    r = rule(match={"output_regex": "(a+)+$"})
    hostile = execution(output={"stdout": "a" * 50_000 + "!"})
    start = time.perf_counter()
    d = decide(hostile, WORKFLOW, [r], facts(), T0 + timedelta(minutes=5))
    assert time.perf_counter() - start < 0.5  # Python's re: 2**50000 steps
    assert d.unhandled_node == "patch"  # '$' needs the a's at the end: no match
    matching = execution(output={"stdout": "!" + "a" * 50_000})
    assert decide(matching, WORKFLOW, [r], facts(), T0 + timedelta(minutes=5)).actions


def test_long_output_is_searched_in_its_head_and_tail_only() -> None:
    pattern = compile_output_regex("FATAL")
    middle = "x" * MAX_OUTPUT_CHARS + "FATAL" + "x" * MAX_OUTPUT_CHARS
    assert not pattern.search(middle)
    assert pattern.search("FATAL" + "x" * 10 * MAX_OUTPUT_CHARS)
    assert pattern.search("x" * 10 * MAX_OUTPUT_CHARS + "FATAL: disk full")
    start = time.perf_counter()
    compile_output_regex("(x+x+)+y").search("x" * 5_000_000)
    assert time.perf_counter() - start < 0.5


def test_lone_surrogate_in_output_does_not_crash_decide() -> None:
    ex = execution(output={"stderr": "bad \ud800 byte: timeout"})
    r = rule(match={"output_regex": "timeout"})
    assert decide(ex, WORKFLOW, [r], facts(), T0 + timedelta(minutes=5)).actions


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        (r"(a)\1", "backreferences"),
        (r"(?=timeout)", "lookahead"),
        (r"(?<!no )timeout", "lookbehind"),
        (r"(?>a+)b", "atomic groups"),
        (r"a++", "possessive quantifiers"),
        (r"x{2000}", "repetition counts over 1000"),
    ],
)
def test_backtracking_features_are_rejected_with_the_reason(pattern: str, feature: str) -> None:
    with pytest.raises(ValidationError) as err:
        RuleSpec.model_validate(
            {"name": "r", "action": "restart", "match": {"output_regex": pattern}}
        )
    text = str(err.value)
    assert "RE2, which runs in linear time" in text
    assert feature in text


def test_overflowing_repeat_count_and_invalid_pattern_are_messages() -> None:
    # Python's re raised OverflowError (a traceback) for this; RE2 reads it as a literal.
    assert compile_output_regex("x{99999999999999999999}").search("x{99999999999999999999}")
    with pytest.raises(RegexRejected, match=r"invalid regular expression '\(' \(missing \)"):
        compile_output_regex("(")
    with pytest.raises(RegexRejected, match="too long"):
        compile_output_regex("a" * 5000)
    with pytest.raises(RegexRejected, match="lone surrogate"):
        compile_output_regex("\ud800")


def test_dollar_matches_before_a_final_newline_as_in_python() -> None:
    assert compile_output_regex("(?i)failed$").search("Build FAILED\n")
    assert compile_output_regex("failed$").search("failed")
    assert not compile_output_regex("failed$").search("failed\nretrying\n")
    assert compile_output_regex("(?m)^failed$").search("failed\nretrying\n")

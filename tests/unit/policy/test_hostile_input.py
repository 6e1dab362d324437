"""Policy files from the wild (issue #18): each reproducer that crashed, hung or was accepted.

Every case goes through ``aomd validate``'s own code (``validate_paths``) and must end in
exit 2 with a message naming the file (and the line where there is one), quickly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from daemon.policy.validate import validate_paths


def run_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    start = time.monotonic()
    code = validate_paths([path])
    assert time.monotonic() - start < 5
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err + out.out


def policy(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    d = tmp_path / "pol"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)
)

CASES = {
    "deeply_nested_yaml_flow": ("rules: " + "[" * 5000 + "]" * 5000, "nested deeper than 64"),
    "deeply_nested_yaml_block": (
        "rules:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        "nested deeper than 64",
    ),
    "self_referencing_alias": ("x: &x [*x]\n", "recursive alias"),
    "alias_bomb": (ALIAS_BOMB, "more than 200,000 values"),
    "nul_byte": ('description: "a\x00b"\n', "p.yaml:1: YAML error: control character #x0000"),
    "huge_duration": (
        "rules:\n- name: r\n  action: restart\n  delay: 99999999999999999999d\n",
        "p.yaml:4: rules[0].delay: duration '99999999999999999999d' is too long",
    ),
    "huge_iso_duration": (
        "rules:\n- name: r\n  action: restart\n  delay: P99999999999999999999D\n",
        "p.yaml:4: rules[0].delay",
    ),
    "backreference_regex": (
        "rules:\n- name: r\n  action: restart\n  match: {output_regex: '(a)\\1'}\n",
        "p.yaml:4: rules[0].match.output_regex",
    ),
    "timezone_over_255_chars": (
        "calendars:\n  c:\n    timezone: " + "A" * 300 + "\n    ranges: []\n",
        "p.yaml:3: calendars.c.timezone: unknown time zone",
    ),
    "timezone_path_recursion": (
        "calendars:\n  c:\n    timezone: Europe/Berlin" + "/x" * 300 + "\n",
        "p.yaml:3: calendars.c.timezone: unknown time zone",
    ),
    "cron_range_backwards": (
        "calendars:\n  c:\n    recurring: [{cron: '1-0 * * * *', duration: 1h}]\n",
        "range '1-0' runs backwards",
    ),
    "ics_dev_zero": ("calendars:\n  c:\n    ics: /dev/zero\n", "a device; expected a regular file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_policy_is_exit_2_with_file_and_reason(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = CASES[case]
    code, out = run_validate(policy(tmp_path, text), capsys)
    assert code == 2, out
    assert "p.yaml" in out
    assert expected in out


def test_deeply_nested_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = policy(tmp_path, "rules = " + "[" * 5000 + "]" * 5000 + "\n", name="p.toml")
    code, out = run_validate(d, capsys)
    assert code == 2
    assert "p.toml: TOML nested too deeply" in out


def test_big_policy_file_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = policy(tmp_path, "")
    with open(d / "p.yaml", "wb") as fh:
        fh.truncate(5 << 20)  # sparse: 5 MiB of NULs without writing them
    code, out = run_validate(d, capsys)
    assert code == 2
    assert "5,242,880 bytes; expected at most 4,194,304 bytes" in out


def test_non_utf8_policy_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "pol"
    d.mkdir()
    (d / "p.yaml").write_bytes(b"rules: []\ndescription: caf\xe9\n")
    code, out = run_validate(d, capsys)
    assert code == 2
    assert "p.yaml:2: not UTF-8 text (byte 0xe9" in out


def test_special_entries_named_yaml_are_errors_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = policy(tmp_path, "rules: []\n")
    os.symlink(tmp_path / "missing.yaml", d / "dangling.yaml")
    os.mkfifo(d / "fifo.yaml")
    (d / "dir.yaml").mkdir()
    os.symlink(tmp_path / "missing", d / ".#p.yaml")  # an editor's lock file: ignored
    code, out = run_validate(d, capsys)
    assert code == 2
    assert "dangling.yaml: a dangling symbolic link" in out
    assert "fifo.yaml: a named pipe (FIFO), not a policy file" in out
    assert "dir.yaml: a directory, not a policy file" in out
    assert ".#p.yaml" not in out
    assert "3 problems found" in out


def test_path_of_100k_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_validate(tmp_path / ("x" * 100_000), capsys)
    assert code == 2
    assert "(100,0" in out
    assert "file name too long" in out.lower()
    assert len(out) < 1000

"""``aomd validate`` reports every problem of a file in one pass (issue #15): a bad field
no longer hides a duplicate name or a cross-field mistake in the same file."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.kernel.errors import PolicyError
from daemon.policy.loader import load_policy_paths

FILE = """\
rules:
  - name: a
    action: restart
    fallback: explode
  - name: a
    action: continue
    match: {status: failed}
    max_attempts: 0
schedules:
  - name: s
    cron: "@daily"
    ics: x.ics
    action: {reboot: {}}
triggers:
  - name: t
    select: {names: ["*"]}
    manage: bogus
calendars:
  c: {timezone: Mars/Olympus}
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy_paths([path])
    return [line.split(": ", 1)[1] for line in caught.value.errors]


def test_one_pass_names_every_problem(tmp_path: Path) -> None:
    problems = _problems(tmp_path, FILE)
    expected = [
        "rules[0].fallback: invalid value 'explode'",
        "rules[1].name: duplicate rule name 'a'",
        "rules[1].max_attempts:",
        "rules[1]: action 'continue' applies to pause nodes only",
        "schedules[0]: give exactly one of 'cron' or 'ics'",
        "schedules[0].action: give exactly one of 'execute' or 'dataarts'",
        "schedules[0].action.reboot: unknown field",
        "triggers[0]: give exactly one of 'off_during' or 'on_only_during'",
        "triggers[0].manage: invalid value 'bogus'",
        "calendars.c.timezone: unknown time zone 'Mars/Olympus'",
        "calendars.c: a calendar needs at least one source",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)
    assert len(problems) == len(expected), problems


def test_a_valid_field_set_reports_a_cross_field_problem_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        'schedules: [{name: s, cron: "@daily", ics: x.ics, action: {execute: {workflow_id: w}}}]\n',
    )
    assert problems == ["schedules[0]: give exactly one of 'cron' or 'ics'"]

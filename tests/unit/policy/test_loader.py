"""Loading policy files: every error with file:line, field and what is expected."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cli import main as cli_main
from daemon.kernel.errors import ConfigError, PolicyError
from daemon.policy import PolicySet, json_schema, load_policy_dir, load_policy_paths, validate_paths

REPO = Path(__file__).resolve().parents[3]


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors_of(*paths: Path) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as info:
        load_policy_paths(paths)
    return info.value.errors


def test_yaml_error_names_file_line_field_and_expectation(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "retry.yaml",
        """
        rules:
          - name: ok
            action: restart
          - name: bad
            action: restart
            backoff:
              initial: 30s
              factor: 0
        """,
    )
    assert errors_of(f) == (
        f"{f}:8: rules[1].backoff.factor: Input should be greater than 0 (expected a number > 0)",
    )


def test_every_error_is_reported_sorted_by_line(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "many.yaml",
        """
        rules:
          - name: a
            action: retsart
            max_attempt: 3
            backoff: {jitter: 1.5}
          - action: skip
            notify: ftp://example
            match:
              status: [failed, stopped]
              min_age: 10x
        """,
    )
    errs = errors_of(f)
    assert errs == (
        f"{f}:3: rules[0].action: invalid value 'retsart' (expected one of 'restart', 'skip', "
        "'continue', 'terminate' or 'notify')",
        f"{f}:4: rules[0].max_attempt: unknown field (expected one of: name, description, match, "
        "accounts, action, max_attempts, backoff, delay, deadline, delay_counting, "
        "deadline_counting, fallback, dry_run, notify, calendar; did you mean 'max_attempts'?)",
        f"{f}:5: rules[0].backoff.jitter: Input should be less than or equal to 1 "
        "(expected a number <= 1)",
        f"{f}:6: rules[1].name: Field required (expected this field to be set)",
        f"{f}:7: rules[1].notify: invalid webhook URL 'ftp://example'; expected an http:// or "
        "https:// URL such as 'https://hooks.example.com/aomd'",
        f"{f}:9: rules[1].match.status[1]: invalid value 'stopped' (expected one of 'failed', "
        "'paused' or 'running')",
        f"{f}:10: rules[1].match.min_age: invalid duration '10x'; expected e.g. '8h', '1h30m', "
        "'2d', '90s', an ISO 8601 duration 'PT8H' or a number of seconds",
    )


def test_config_error_message_is_multiline(tmp_path: Path) -> None:
    f = write(tmp_path, "x.yaml", "rules:\n  - {name: a}\n  - {name: b}\n")
    with pytest.raises(ConfigError) as info:
        load_policy_dir(tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in policy files:"
    assert lines[1].startswith(f"{f}:2: rules[0].action: Field required")
    assert lines[2].startswith(f"{f}:3: rules[1].action: Field required")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    f = write(tmp_path, "syn.yaml", "rules:\n  - name: x\n   action: y\n")
    (err,) = errors_of(f)
    assert err.startswith(f"{f}:3: YAML syntax error:")
    assert err.endswith("(expected valid YAML)")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    f = write(tmp_path, "dup.yaml", "rules: []\ncalendars: {}\nrules: []\n")
    (err,) = errors_of(f)
    assert err.startswith(f"{f}:3: rules: duplicate key")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    f = write(tmp_path, "list.yaml", "- a\n- b\n")
    (err,) = errors_of(f)
    assert err.startswith(f"{f}:1: (top level): a policy file must be a mapping")


def test_toml_errors_name_file_and_field(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "r.toml",
        """
        [[rules]]
        name = "a"
        action = "restart"
        max_attempts = 0
        """,
    )
    assert errors_of(f) == (
        f"{f}: rules[0].max_attempts: Input should be greater than or equal to 1 "
        "(expected a number >= 1)",
    )


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    f = write(tmp_path, "s.toml", '[[rules]]\nname = "a"\naction = \n')
    (err,) = errors_of(f)
    assert err.startswith(f"{f}:3: TOML syntax error:")


def test_cross_file_checks(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - name: r1
            action: restart
            calendar: {inside: biz-hour}
        calendars:
          biz-hours:
            recurring: [{cron: "0 9 * * mon-fri", duration: 8h}]
            any_of: [missing]
        """,
    )
    b = write(
        tmp_path,
        "b.yml",
        """
        rules:
          - name: r1
            action: skip
        triggers:
          - {name: t, select: {names: ["*"]}, off_during: freeze}
        schedules:
          - name: s
            cron: "0 2 * * *"
            action: {execute: {workflow_id: w}}
            blocked_by: [biz-hours, nope]
        """,
    )
    assert errors_of(tmp_path) == (
        f"{a}:4: rules[0].calendar.inside: rule 'r1': unknown calendar 'biz-hour' "
        "(did you mean 'biz-hours'?); expected one of: biz-hours",
        f"{a}:8: calendars.biz-hours.any_of[0]: calendar 'biz-hours': unknown calendar "
        "'missing'; expected one of: biz-hours",
        f"{b}:2: rules[0].name: duplicate rule name 'r1' (also at {a}:2; expected unique names)",
        f"{b}:5: triggers[0].off_during: trigger 't': unknown calendar 'freeze'; expected one "
        "of: biz-hours",
        f"{b}:10: schedules[0].blocked_by[1]: schedule 's': unknown calendar 'nope'; expected "
        "one of: biz-hours",
    )


def test_merge_order_and_values(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "rules:\n  - {name: second, action: skip}\n")
    write(
        tmp_path,
        "a.toml",
        '[[rules]]\nname = "first"\naction = "restart"\ndelay = "1h30m"\n'
        '[rules.match]\nstatus = "failed"\n',
    )
    write(tmp_path, "ignored.txt", "not a policy")
    policy = load_policy_dir(tmp_path)
    assert isinstance(policy, PolicySet)
    assert [r.name for r in policy.rules] == ["first", "second"]
    first = policy.rules[0]
    assert first.delay == timedelta(hours=1, minutes=30)
    assert first.status == ("failed",)
    assert first.max_attempts == 3
    assert first.backoff.initial == timedelta(seconds=30)
    assert first.backoff.max == timedelta(minutes=10)
    assert first.fallback == "leave"
    assert policy.summary() == "2 rules, 0 calendars, 0 trigger rules, 0 schedules"


def test_schedules_as_mapping(tmp_path: Path) -> None:
    write(
        tmp_path,
        "s.yaml",
        """
        schedules:
          nightly:
            cron: "0 2 * * *"
            action: {execute: {workflow_name: backup}}
        """,
    )
    policy = load_policy_dir(tmp_path)
    assert [s.name for s in policy.schedules] == ["nightly"]


def test_running_status_only_with_terminate_or_notify(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "r.yaml",
        "rules:\n  - name: r\n    action: restart\n    match: {status: running}\n",
    )
    (err,) = errors_of(f)
    assert err.startswith(f"{f}:2: rules[0]: match.status 'running' cannot be combined")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path / "nope")
    assert "no such file or directory" in err


def test_examples_load() -> None:
    policy = load_policy_dir(REPO / "policies")
    assert len(policy.rules) >= 6
    actions = {r.action for r in policy.rules}
    assert actions >= {"restart", "skip", "continue", "terminate", "notify"}
    assert {r.fallback for r in policy.rules} >= {"skip", "terminate", "leave"}
    assert any(r.gate is not None for r in policy.rules)
    assert any(r.deadline is not None for r in policy.rules)
    assert any(r.delay > timedelta(0) for r in policy.rules)
    assert policy.triggers
    assert policy.schedules
    assert set(policy.built_calendars) == set(policy.calendars)


def test_validate_paths_ok_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_paths([REPO / "policies"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ")
    assert "rules" in out
    assert "schedules" in out
    f = write(tmp_path, "bad.yaml", "rules:\n  - name: a\n    action: restart\n    delay: -5\n")
    assert validate_paths([f]) == 2
    err = capsys.readouterr().err
    assert f"{f}:4: rules[0].delay: duration must not be negative" in err
    assert err.rstrip().endswith("aomd: 1 problem found")


def test_cli_validate_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(REPO / "policies")]) == 0
    f = write(tmp_path, "bad.yaml", "rules:\n  - name: a\n")
    assert cli_main(["validate", str(f)]) == 2
    capsys.readouterr()
    assert cli_main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "aomd policy file"


def test_json_schema_is_json_and_describes_rules() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert set(schema["properties"]) == {
        "description",
        "rules",
        "calendars",
        "triggers",
        "schedules",
        "notify",
        "overrides",
    }
    rule = schema["$defs"]["RuleSpec"]
    assert rule["additionalProperties"] is False
    for name in ("name", "match", "action", "max_attempts", "backoff", "delay", "deadline"):
        assert name in rule["properties"]
    for name in ("fallback", "dry_run", "notify", "calendar"):
        assert name in rule["properties"]
    assert set(schema["$defs"]["BackoffSpec"]["properties"]) == {
        "initial",
        "factor",
        "max",
        "jitter",
        "counting",
    }
    assert "CalendarSpec" in schema["$defs"]


def test_action_and_status_must_fit(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "fit.yaml",
        """
        rules:
          - {name: a, action: restart, match: {status: paused}}
          - {name: b, action: continue, match: {status: [failed, paused]}}
          - {name: c, action: continue, fallback: skip}
          - {name: d, action: continue, fallback: terminate}
        """,
    )
    errs = errors_of(f)
    assert [e.split(": ", 2)[:2] for e in errs] == [
        [f"{f}:2", "rules[0]"],
        [f"{f}:3", "rules[1]"],
        [f"{f}:4", "rules[2]"],
    ]
    assert "expected match.status: failed" in errs[0]
    assert "expected match.status: paused" in errs[1]
    assert "expected fallback terminate or leave" in errs[2]


def test_rules_triggers_and_schedules_scoped_to_accounts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "scoped.yaml",
        """
        calendars:
          freeze: {timezone: UTC, ranges: [{start: "2026-12-18T18:00:00", end: "2027-01-04T08:00:00"}]}
        rules:
          - {name: cn-only, accounts: [prod-cn], action: restart, match: {status: failed}}
          - {name: both, accounts: prod-eu, action: restart, match: {status: failed}}
          - {name: everywhere, action: continue, match: {status: paused}}
        triggers:
          - {name: t-cn, accounts: [prod-cn], select: {names: ["*"]}, off_during: freeze}
        schedules:
          - {name: s-eu, accounts: [prod-eu], cron: "0 2 * * *", action: {execute: {workflow_name: backup}}}
        """,
    )
    policy = load_policy_dir(tmp_path)
    cn, eu, other = (policy.for_account(a) for a in ("prod-cn", "prod-eu", "test"))
    assert [r.name for r in cn.rules] == ["cn-only", "everywhere"]
    assert [r.name for r in eu.rules] == ["both", "everywhere"]
    assert [r.name for r in other.rules] == ["everywhere"]
    assert [t.name for t in cn.triggers] == ["t-cn"]
    assert eu.triggers == other.triggers == ()
    assert [s.name for s in eu.schedules] == ["s-eu"]
    assert cn.schedules == ()
    unscoped = load_policy_dir(REPO / "policies")
    assert unscoped.for_account("any") is unscoped  # nothing scoped: the snapshot itself
    bad = write(tmp_path, "scoped.yaml", "rules:\n  - {name: x, action: restart, accounts: [3]}\n")
    (error,) = errors_of(bad)
    assert "scoped.yaml:2: rules[0].accounts" in error, error


def test_counting_names_a_known_calendar(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "counting.yaml",
        """
        calendars:
          working-time: {timezone: UTC, recurring: [{cron: "0 9 * * mon-fri", duration: 8h}]}
        rules:
          - name: ok
            action: continue
            delay: {duration: 2h, counting: working-time}
            deadline: {duration: 1d, counting: wall}
            backoff: {counting: working-time}
          - name: typo
            action: continue
            delay: {duration: 2h, counting: workingtime}
        """,
    )
    (error,) = errors_of(f)
    assert (
        "counting.yaml:11: rules[1].delay: rule 'typo' counting: unknown calendar 'workingtime'"
        in error
    )
    assert "did you mean 'working-time'" in error
    f.write_text(f.read_text().replace("workingtime", "working-time"))
    ok, _ = load_policy_dir(tmp_path).rules
    assert (ok.delay, ok.delay_counting, ok.deadline_counting) == (
        timedelta(hours=2),
        "working-time",
        None,
    )
    assert ok.backoff.counting == "working-time"
    (bad,) = errors_of(
        write(
            tmp_path, "counting.yaml", "rules:\n  - {name: x, action: restart, delay: {for: 2h}}\n"
        )
    )
    assert "delay: expected a duration or {duration: <duration>, counting: <calendar>}" in bad


def test_validate_warns_where_trigger_rules_relied_on_first_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(
        tmp_path,
        "t.yaml",
        "calendars:\n  f: {ranges: [{start: '2026-01-01T00:00:00Z', end: '2026-01-02T00:00:00Z'}]}\n"
        "  n: {recurring: [{cron: '0 22 * * *', duration: 8h}]}\n"
        "triggers:\n"
        "  - name: cn\n    select: {tags: {region: cn}}\n    on_only_during: n\n"
        "  - name: eu\n    select: {tags: {region: eu}}\n    off_during: f\n"
        "  - name: all\n    select: {names: ['*']}\n    off_during: f\n",
    )
    assert validate_paths([f]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("ok: ")
    lines = cap.err.splitlines()
    # cn/eu cannot select one workflow (region differs); eu/all follow the same calendar.
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: {f}:")
    assert "rule 'eu'" not in cap.err
    assert "rule 'all' (off_during: f) and rule 'cn' (on_only_during: n" in lines[0]
    assert "deny beats allow" in lines[0]


def test_catch_up_shift_and_overlap_are_checked_with_file_and_line(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "s.yaml",
        """
        calendars:
          hol: {holidays: {country: DE}}
        schedules:
          - name: no-blocker
            cron: "0 6 * * *"
            action: {execute: {workflow_name: w}}
            catch_up: once
          - name: overlap-dataarts
            cron: "0 6 * * *"
            action: {dataarts: {task_id: "1"}}
            overlap: skip
          - name: shift-two
            cron: "0 6 * * *"
            action: {execute: {workflow_name: w}}
            shift: {to: next_business_day, avoid: hol, within: hol}
        """,
    )
    errs = "\n".join(errors_of(f))
    assert "catch_up: once needs blocked_by" in errs
    assert "overlap: skip applies to execute actions only" in errs
    assert "give exactly one of 'avoid' or 'within'" in errs
    assert f"{f}:" in errs
    g = write(
        tmp_path,
        "u.yaml",
        """
        calendars:
          hol: {holidays: {country: DE}}
        schedules:
          - name: shift-unknown
            cron: "0 6 * * *"
            action: {execute: {workflow_name: w}}
            shift: {to: next_business_day, avoid: holidayz}
        """,
    )
    [err] = errors_of(g)
    assert err.startswith(f"{g}:")
    assert "shift.avoid: schedule 'shift-unknown': unknown calendar 'holidayz'" in err
    ok = write(
        tmp_path,
        "ok.yaml",
        """
        calendars:
          hol: {holidays: {country: DE}}
        schedules:
          - name: s
            cron: "0 6 * * *"
            action: {execute: {workflow_name: w}}
            blocked_by: [hol]
            catch_up: all
            catch_up_window: 2d
            shift: {to: previous_business_day, avoid: hol}
            overlap: terminate_previous
        """,
    )
    [spec] = load_policy_paths([ok]).schedules
    assert (spec.catch_up, spec.catch_up_window.days, spec.overlap) == (
        "all",
        2,
        "terminate_previous",
    )


def test_policy_file_overrides_need_an_expiry_and_known_targets(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "o.yaml",
        """
        calendars:
          freeze: {ranges: [{start: "2026-12-18T00:00:00Z", end: "2027-01-04T00:00:00Z"}]}
        overrides:
          - {id: no-end, calendar: freeze, state: off, ticket: CHG-1}
          - {id: cal-hold, calendar: freeze, state: hold, until: "2026-12-22T12:00:00"}
          - {id: two, workflow: w1, rule: r, state: on, until: "2026-12-22T12:00:00"}
        """,
    )
    errs = "\n".join(errors_of(f))
    assert f"{f}:4: overrides[0].until: Field required" in errs
    assert "'hold' is for workflows/rules" in errs
    assert "give exactly one of 'workflow', 'rule' or 'calendar'" in errs
    g = write(
        tmp_path,
        "p.yaml",
        """
        calendars:
          freeze: {ranges: [{start: "2026-12-18T00:00:00Z", end: "2027-01-04T00:00:00Z"}]}
        overrides:
          - {id: lift, calendar: freeze, state: off, until: "2026-12-22T12:00:00", ticket: CHG-2}
          - {id: ghost, rule: nope, state: on, until: "2026-12-22T12:00:00"}
        """,
    )
    [err] = errors_of(g)
    assert "overrides[1].rule: unknown rule 'nope'" in err
    g.write_text(g.read_text().replace("  - {id: ghost, rule: nope, state: on,", "#"))
    [lift] = load_policy_paths([g]).overrides
    assert (lift.target_kind, lift.target, lift.state, lift.ticket) == (
        "calendar",
        "freeze",
        "off",
        "CHG-2",
    )
    assert lift.until.isoformat() == "2026-12-22T12:00:00+00:00"
    assert lift.who == f"policy:{g}:4"

"""``aomd schema`` and ``aomd validate`` accept the same policy files (issue #15).

An editor pointed at the schema must not mark a file red that the validator accepts, nor
green one it rejects. Both directions are checked with the ``jsonschema`` library: every
example file, a few hundred generated valid files (with every shorthand the README shows),
and generated invalid ones, which both must reject.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from daemon.policy import json_schema
from daemon.policy.file_spec import PolicyFile

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def _as_editor_sees(value: Any) -> Any:
    """YAML/TOML date-times are strings to a JSON Schema (editors treat them so)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _as_editor_sees(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_editor_sees(v) for v in value]
    return value


def _schema_ok(data: Any) -> bool:
    return VALIDATOR.is_valid(_as_editor_sees(data))


def _validator_ok(data: Any) -> bool:
    try:
        PolicyFile.model_validate(data)
    except ValidationError:
        return False
    return True


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (ROOT / "policies").iterdir() if p.suffix in {".yaml", ".yml", ".toml"}),
    ids=lambda p: p.name,
)
def test_every_example_policy_validates_against_the_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    errors = [e.message for e in VALIDATOR.iter_errors(_as_editor_sees(data))]
    assert errors == []
    assert _validator_ok(data)


def test_the_readme_shorthands_are_in_the_schema() -> None:
    """The three forms the issue found red: a single status, an ics path, schedules as a
    mapping."""
    data = {
        "rules": [{"name": "r", "action": "restart", "match": {"status": "failed"}}],
        "calendars": {"maintenance": {"timezone": "Europe/Berlin", "ics": "maintenance.ics"}},
        "schedules": {
            "nightly": {"cron": "30 2 * * *", "action": {"execute": {"workflow_name": "b"}}}
        },
    }
    assert _schema_ok(data)
    assert _validator_ok(data)


names = st.from_regex(r"[a-z][a-z0-9_.:-]{0,12}", fullmatch=True)
durations = st.sampled_from(["30s", "10m", "1h30m", "2d", "PT10M", 90, 2.5])
crons = st.sampled_from(["0 9 * * mon-fri", "*/5 * * * *", "@daily", "30 2 * * *"])
zones = st.sampled_from(["UTC", "Europe/Berlin", "Asia/Shanghai"])


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(["restart", "skip", "continue", "terminate", "notify"]))
    allowed = {
        "restart": ["failed"],
        "skip": ["failed"],
        "continue": ["paused"],
        "terminate": ["failed", "paused", "running"],
        "notify": ["failed", "paused", "running"],
    }[action]
    rule: dict[str, Any] = {"name": draw(names), "action": action}
    match: dict[str, Any] = {}
    if draw(st.booleans()):
        status = draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=3, unique=True))
        match["status"] = status[0] if len(status) == 1 and draw(st.booleans()) else status
    if draw(st.booleans()):
        match["workflow"] = {"name": "patch-*", "tags": {"team": "ops"}}
    if draw(st.booleans()):
        match["node"] = {"name": draw(names)}
    if draw(st.booleans()):
        match["output_regex"] = "(?i)timeout"
    if match:
        rule["match"] = match
    running = "running" in match.get("status", ())
    if draw(st.booleans()):
        rule["max_attempts"] = draw(st.integers(1, 100))
    if draw(st.booleans()):
        rule["backoff"] = {
            "initial": draw(durations),
            "factor": draw(st.floats(0.5, 4)),
            "jitter": draw(st.floats(0, 1)),
        }
    if draw(st.booleans()) and not running:
        rule["delay"] = draw(durations)
    if draw(st.booleans()):
        stopped_status = match.get("status", allowed)
        fallbacks = ["terminate", "leave"]
        if "paused" not in stopped_status and action != "continue":
            fallbacks.append("skip")
        rule["fallback"] = draw(st.sampled_from(fallbacks))
    if draw(st.booleans()):
        rule["notify"] = draw(st.sampled_from([True, False, "https://hooks.example.com/x"]))
    if draw(st.booleans()):
        rule["calendar"] = {draw(st.sampled_from(["inside", "outside"])): "freeze"}
    return rule


@st.composite
def calendars(draw: st.DrawFn) -> dict[str, Any]:
    cal: dict[str, Any] = {"timezone": draw(zones)}
    source = draw(st.sampled_from(["recurring", "ranges", "ics", "ics_obj", "holidays", "any"]))
    if source == "recurring":
        cal["recurring"] = [{"cron": draw(crons), "duration": draw(durations)}]
    elif source == "ranges":
        end = draw(st.sampled_from(["2026-12-27", datetime(2027, 1, 4, 8), "2027-01-04T08:00Z"]))
        cal["ranges"] = [{"start": "2026-12-18T18:00:00", "end": end}]
    elif source == "ics":
        cal["ics"] = "maintenance.ics"
    elif source == "ics_obj":
        cal["ics"] = {"path": "m.ics", "summary": "Maint*"}
    elif source == "holidays":
        cal["holidays"] = {"country": "DE", "subdivision": "BY"}
    else:
        cal["any_of"] = ["freeze"]
    return cal


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(
        st.sampled_from(
            [
                {"execute": {"workflow_name": "backup-db"}},
                {"execute": {"workflow_id": "wf-1"}},
                {"dataarts": {"task_id": "123", "action": "start", "workspace": "ws"}},
                {"dataarts": {"task_id": "123"}},
            ]
        )
    )
    spec: dict[str, Any] = {"action": action, "timezone": draw(zones)}
    if draw(st.booleans()):
        spec["cron"] = draw(crons)
    else:
        spec["ics"] = draw(st.sampled_from(["events.ics", {"path": "e.ics"}]))
    if draw(st.booleans()):
        spec["blocked_by"] = ["freeze"]
    if draw(st.booleans()):
        spec["misfire_grace_seconds"] = draw(st.integers(0, 3600))
    return spec


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["description"] = "generated"
    if draw(st.booleans()):
        data["rules"] = draw(st.lists(rules(), max_size=3))
    if draw(st.booleans()):
        data["calendars"] = draw(st.dictionaries(names, calendars(), max_size=3))
    if draw(st.booleans()):
        data["triggers"] = [
            {
                "name": draw(names),
                "select": draw(st.sampled_from([{"names": ["*"]}, {"tags": {"kind": "db"}}])),
                draw(st.sampled_from(["off_during", "on_only_during"])): "freeze",
                "manage": draw(st.sampled_from(["owned", "full"])),
            }
        ]
    if draw(st.booleans()):
        listed = draw(st.lists(schedules(), max_size=3))
        if draw(st.booleans()):
            data["schedules"] = [{"name": f"s{i}", **s} for i, s in enumerate(listed)]
        else:
            data["schedules"] = {f"s{i}": s for i, s in enumerate(listed)}
    if draw(st.booleans()):
        data["notify"] = {"webhook": "https://hooks.example.com/aomd"}
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_generated_valid_policies_pass_the_validator_and_the_schema(data: dict[str, Any]) -> None:
    assert _validator_ok(data), data
    errors = [e.message for e in VALIDATOR.iter_errors(_as_editor_sees(data))]
    assert errors == [], data


BREAKAGES: dict[str, Any] = {
    "unknown top-level key": lambda d: {**d, "rule": []},
    "misspelt rule field": lambda d: {
        **d,
        "rules": [{"name": "r", "action": "restart", "max_attempt": 3}],
    },
    "unknown action": lambda d: {**d, "rules": [{"name": "r", "action": "reboot"}]},
    "max_attempts out of range": lambda d: {
        **d,
        "rules": [{"name": "r", "action": "restart", "max_attempts": 0}],
    },
    "unknown status": lambda d: {
        **d,
        "rules": [{"name": "r", "action": "terminate", "match": {"status": "stuck"}}],
    },
    "empty status list": lambda d: {
        **d,
        "rules": [{"name": "r", "action": "terminate", "match": {"status": []}}],
    },
    "jitter above 1": lambda d: {
        **d,
        "rules": [{"name": "r", "action": "restart", "backoff": {"jitter": 2}}],
    },
    "bad rule name": lambda d: {**d, "rules": [{"name": "a rule", "action": "restart"}]},
    "parameters for ExecuteWorkflow": lambda d: {
        **d,
        "schedules": [
            {
                "name": "s",
                "cron": "@daily",
                "action": {"execute": {"workflow_id": "w", "parameters": {"x": "1"}}},
            }
        ],
    },
    "schedule without action": lambda d: {**d, "schedules": [{"name": "s", "cron": "@daily"}]},
    "unknown manage": lambda d: {
        **d,
        "triggers": [{"name": "t", "select": {"names": ["*"]}, "off_during": "f", "manage": "x"}],
    },
    "calendar typo": lambda d: {**d, "calendars": {"c": {"recuring": []}}},
    "ics of a number": lambda d: {**d, "calendars": {"c": {"ics": 5}}},
    "rules not a list": lambda d: {**d, "rules": {"name": "r"}},
    "dataarts unknown action": lambda d: {
        **d,
        "schedules": [
            {
                "name": "s",
                "cron": "@daily",
                "action": {"dataarts": {"task_id": "1", "action": "pause"}},
            }
        ],
    },
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.sampled_from(sorted(BREAKAGES)))
def test_generated_invalid_policies_fail_both(base: dict[str, Any], breakage: str) -> None:
    data = BREAKAGES[breakage](base)
    assert not _validator_ok(data), breakage
    assert not _schema_ok(data), breakage


def test_parameters_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        PolicyFile.model_validate(BREAKAGES["parameters for ExecuteWorkflow"]({}))
    assert "ExecuteWorkflow API takes no request body" in str(caught.value)

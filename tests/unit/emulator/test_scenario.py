"""Scenario parsing: the bundled demo loads; mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

import daemon.emulator
from daemon.emulator import Emulator
from daemon.emulator.scenario import read_scenario
from daemon.kernel.errors import ConfigError

PID = "0123456789abcdef0123456789abcdef"
DEMO = Path(daemon.emulator.__file__).parent / "scenarios" / "demo.yaml"


def test_demo_scenario_loads_and_covers_the_cases() -> None:
    scenario = read_scenario(DEMO)
    kinds = {n.behaviour.kind for w in scenario.workflows for n in w.nodes}
    assert {"succeed", "fail", "fail_times", "fail_probability"} <= kinds
    assert any(n.kind == "pause" for w in scenario.workflows for n in w.nodes)
    crons = [w for w in scenario.workflows if w.type == "cron"]
    assert len(crons) >= 2
    emu = Emulator(project_id=PID, token="t")
    ids = emu.load_scenario(DEMO)
    assert len(ids) == len(scenario.workflows)
    assert emu.clock.speed == 60
    assert emu.seed == 7


def test_behaviour_duration_override() -> None:
    s = read_scenario(
        {"workflows": [{"name": "w", "nodes": [{"id": "a", "behaviour": {"duration": 7}}]}]}
    )
    assert s.workflows[0].nodes[0].duration_ms == 7000


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"workflows": [{"name": "w", "type": "cron"}]}, "workflows[0].cron"),
        (
            {"workflows": [{"name": "w", "nodes": [{"id": "a", "behaviour": "explode"}]}]},
            "workflows[0].nodes[0].behaviour",
        ),
        (
            {
                "workflows": [
                    {"name": "w", "nodes": [{"id": "a", "behaviour": {"fail_probability": 2}}]}
                ]
            },
            "fail_probability",
        ),
        ({"workflows": [{"nam": "w"}]}, "workflows[0]"),
        ({"speed": "fast"}, "speed"),
    ],
)
def test_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        read_scenario(data)

"""The one workflow matcher shared by execution rules and trigger rules."""

from __future__ import annotations

from daemon.kernel.model import Workflow
from daemon.kernel.workflow_match import workflow_matches

WF = Workflow(id="wf-1", name="patch-linux", tags={"team": "ops", "env": "prod-eu"})


def test_no_criteria_match_everything() -> None:
    assert workflow_matches("wf-1", WF)
    assert workflow_matches("wf-1", None)


def test_every_criterion_must_match_and_any_listed_value_may() -> None:
    assert workflow_matches("wf-1", WF, ids=("wf-0", "wf-1"), names=("backup", "patch-*"))
    assert workflow_matches("wf-1", WF, tags=(("team", "ops"), ("env", "prod*")))
    assert not workflow_matches("wf-1", WF, ids=("wf-0",))
    assert not workflow_matches("wf-1", WF, names=("Patch-*",))  # case-sensitive
    assert not workflow_matches("wf-1", WF, ids=("wf-1",), tags=(("team", "db"),))
    assert not workflow_matches("wf-1", WF, tags=(("owner", "*"),))  # a missing tag


def test_without_the_definition_only_ids_can_match() -> None:
    assert workflow_matches("wf-1", None, ids=("wf-1",))
    assert not workflow_matches("wf-1", None, names=("*",))
    assert not workflow_matches("wf-1", None, tags=(("team", "*"),))

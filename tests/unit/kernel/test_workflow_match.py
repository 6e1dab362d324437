"""The one workflow matcher shared by execution rules and trigger rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.kernel.model import Workflow
from daemon.kernel.workflow_match import matching_positions, workflow_matcher, workflow_matches

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


@given(
    st.lists(st.sampled_from(["wf-1", "wf-2"]), max_size=2),
    st.lists(
        st.sampled_from(["*", "patch-*", "Patch-*", "p?tch-linux", "[a-p]*", "x"]), max_size=2
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["team", "env", "owner"]), st.sampled_from(["ops", "prod*", "*"])
        ),
        max_size=2,
    ),
)
def test_the_compiled_matcher_answers_as_workflow_matches(
    ids: list[str], names: list[str], tags: list[tuple[str, str]]
) -> None:
    """``aomd plan`` judges a whole fleet with these; they must agree."""
    matches = workflow_matcher(ids=ids, names=names, tags=tags)
    fleet = [WF, Workflow(id="wf-2", name="backup", tags={"team": "db"}), WF]
    want = [
        n
        for n, wf in enumerate(fleet)
        if workflow_matches(wf.id, wf, ids=ids, names=names, tags=tags)
    ]
    assert [n for n, wf in enumerate(fleet) if matches(wf)] == want
    assert matching_positions(fleet, ids=ids, names=names, tags=tags) == want

"""The journaled fingerprint must read back as exactly the one it was made from.

Lost-reply resolution compares the journaled ``observed`` text (parsed back) with a fresh
``fingerprint``; if the round trip lost anything, "state did not move since our write"
would break silently.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.kernel.model import Execution, NodeRun, Status
from daemon.policy.observe import Fingerprint, fingerprint, observed

statuses = st.sampled_from(list(Status))
times = st.none() | st.integers(0, 2**41)
outputs = st.dictionaries(
    st.text(max_size=5), st.none() | st.integers() | st.text(max_size=8) | st.lists(st.integers())
)
nodes = st.builds(
    NodeRun,
    node_id=st.sampled_from(["a", "b", "c"]),
    status=statuses,
    raw_status=st.sampled_from(["", "fail", "PAUSING"]),
    begin_time=times,
    end_time=times,
    output=outputs,
)
executions = st.builds(
    Execution,
    workflow_id=st.just("w"),
    execution_id=st.just("e"),
    status=statuses,
    raw_status=st.sampled_from(["", "pausing", "Executing"]),
    nodes=st.lists(nodes, max_size=5).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(executions, st.none() | st.sampled_from(["a", "b", "c", "zz"]))
def test_observed_reads_back_as_the_fingerprint(execution: Execution, node_id: str | None) -> None:
    assert Fingerprint.loads(observed(execution, node_id)) == fingerprint(execution, node_id)

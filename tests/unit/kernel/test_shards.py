"""The pure shard functions every replica must agree on without talking."""

from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from daemon.kernel.shards import (
    Shard,
    all_shards,
    assign,
    bucket_of,
    lease_name,
    ranked,
)

ids = st.text(min_size=1, max_size=64)
members = st.sets(st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12), min_size=1)


@given(ids, st.integers(min_value=1, max_value=64))
def test_a_workflow_is_in_exactly_one_bucket(workflow_id: str, n: int) -> None:
    assert 0 <= bucket_of(workflow_id, n) < n


def test_buckets_do_not_depend_on_the_process() -> None:
    """Python's ``hash`` is salted per process; the bucket must not be."""
    code = "from daemon.kernel.shards import bucket_of; print(bucket_of('wf-123', 7))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert outs == {str(bucket_of("wf-123", 7))}


def test_buckets_spread_a_fleet_evenly() -> None:
    counts = [0] * 4
    for i in range(4000):
        counts[bucket_of(f"wf-{i:05d}", 4)] += 1
    assert all(900 <= c <= 1100 for c in counts), counts


@given(members, st.text(min_size=1, max_size=8), st.integers(min_value=1, max_value=8))
def test_every_replica_prefers_the_same_owner(live: set[str], account: str, n: int) -> None:
    for shard in all_shards({account: n}):
        owners = {ranked(shard, sorted(live, key=lambda m: hash((m, k))))[0] for k in range(3)}
        assert len(owners) == 1
        assert owners <= live


@given(members, st.text(alphabet="abc", min_size=1, max_size=3))
def test_a_member_leaving_moves_only_its_own_shards(live: set[str], gone: str) -> None:
    shards = all_shards({f"acc{i}": 3 for i in range(8)})
    everyone = live | {gone}
    before = {s: ranked(s, everyone)[0] for s in shards}
    after = {s: ranked(s, live)[0] for s in shards}
    moved = {s for s in shards if before[s] != after[s]}
    assert all(before[s] == gone for s in moved)


@given(members, st.dictionaries(st.text(min_size=1, max_size=6), st.integers(1, 4), min_size=1))
def test_assignment_is_balanced_and_the_same_whatever_the_order(
    live: set[str], plan: dict[str, int]
) -> None:
    shards = all_shards(plan)
    first = assign(shards, sorted(live))
    assert first == assign(list(reversed(shards)), sorted(live, reverse=True))
    assert set(first) == set(shards)
    assert set(first.values()) <= live
    load = [list(first.values()).count(m) for m in live]
    assert max(load) - min(load) <= 1


@given(members, st.text(alphabet="abc", min_size=1, max_size=3))
def test_a_member_leaving_from_a_balanced_split_moves_few_other_shards(
    live: set[str], gone: str
) -> None:
    shards = all_shards({f"acc{i}": 1 for i in range(len(live | {gone}) * 2)})
    before = assign(shards, live | {gone})
    after = assign(shards, live)
    others_moved = [s for s in shards if before[s] != gone and before[s] != after[s]]
    # its own shards must move; the rest mostly stay (the load cap may shift a few)
    assert len(others_moved) <= len(shards) // 2


def test_six_accounts_on_three_replicas_split_two_each() -> None:
    shards = all_shards({f"acct-{i}": 1 for i in range(6)})
    for names in (["r0", "r1", "r2"], ["a", "b", "c"], ["replica-0", "replica-1", "replica-2"]):
        load = sorted(list(assign(shards, names).values()).count(n) for n in names)
        assert load == [2, 2, 2], (names, load)


@given(st.text(min_size=1, max_size=100), st.text(max_size=100))
def test_lease_names_are_valid_kubernetes_names(prefix: str, part: str) -> None:
    name = lease_name(prefix, part, "0")
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name
    assert len(name) <= 63


def test_lease_names_that_clean_up_alike_stay_apart() -> None:
    assert lease_name("aomd", "Prod_EU") != lease_name("aomd", "prod-eu")
    assert lease_name("aomd", "prod-eu", "0") == "aomd-prod-eu-0"


def test_shard_labels() -> None:
    assert Shard("prod").label == "prod"
    assert Shard("prod", 1, 4).label == "prod/2of4"
    assert [s.label for s in all_shards({"a": 2, "b": 1})] == ["a/1of2", "a/2of2", "b"]

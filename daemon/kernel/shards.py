"""Shards: how several replicas split the work, as pure functions.

A shard is one account, or within an account with ``shards = N`` one of N buckets of its
workflows (a stable hash of the workflow id). Every replica computes the same answers
from the same inputs, with no coordination: which bucket a workflow is in (CRC-32, not
Python's salted ``hash``) and which live replica a shard prefers (rendezvous hashing,
so a replica joining or leaving moves only the shards it gains or loses, about 1/N of
them, instead of reshuffling everything).

The preference only balances; it never grants the right to write. That comes from the
shard's Lease (``daemon.ops.shard_election``): two replicas that briefly disagree about
who is alive both ask for the Lease, and the API server lets one of them have it.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Shard:
    """Bucket ``bucket`` of ``of`` of the account's workflows (``of == 1``: all of them)."""

    account: str
    bucket: int = 0
    of: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.bucket < self.of:
            raise ValueError(f"shard bucket {self.bucket} outside 0..{self.of - 1}")

    @property
    def label(self) -> str:
        """What operators read in metrics and ``aomd status``: ``prod`` or ``prod/1of4``."""
        return self.account if self.of == 1 else f"{self.account}/{self.bucket + 1}of{self.of}"


def bucket_of(workflow_id: str, buckets: int) -> int:
    """The bucket of a workflow: stable across processes, versions and machines."""
    if buckets <= 1:
        return 0
    return zlib.crc32(workflow_id.encode()) % buckets


def shard_of(account: str, workflow_id: str, buckets: int) -> Shard:
    return Shard(account, bucket_of(workflow_id, buckets), max(1, buckets))


def all_shards(plan: Mapping[str, int]) -> list[Shard]:
    """Every shard of ``plan`` (account -> bucket count), in a stable order."""
    return [Shard(account, b, max(1, n)) for account, n in plan.items() for b in range(max(1, n))]


def _score(shard: Shard, member: str) -> tuple[bytes, str]:
    digest = hashlib.blake2b(
        f"{shard.account}\0{shard.bucket}\0{shard.of}\0{member}".encode(), digest_size=8
    ).digest()
    return digest, member


def ranked(shard: Shard, members: Iterable[str]) -> list[str]:
    """The members in the order ``shard`` prefers them (rendezvous: highest score first);
    a member leaving or joining never reorders the others."""
    return sorted(set(members), key=lambda m: _score(shard, m), reverse=True)


def assign(shards: Iterable[Shard], members: Iterable[str]) -> dict[Shard, str]:
    """Which live replica should hold each shard: rendezvous hashing with bounded load.

    Plain rendezvous is lumpy at fleet sizes people run (6 accounts on 3 replicas can
    split 4/1/1); here each shard, in a fixed order, goes to its highest-scoring member
    that still has room (``shards // members`` each, one more for the first
    ``shards % members`` to reach it), so loads differ by at most one.
    Every replica computes the same map from the same member set; a member joining or
    leaving still moves few shards, since each shard keeps its ranking of members.
    """
    ordered = sorted(shards)
    live = sorted(set(members))
    if not live:
        return {}
    low, extra = divmod(len(ordered), len(live))
    load = dict.fromkeys(live, 0)
    out: dict[Shard, str] = {}
    for shard in ordered:
        for member in ranked(shard, live):
            if load[member] < low or (load[member] == low and extra > 0):
                extra -= load[member] == low
                out[shard] = member
                load[member] += 1
                break
    return out


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def lease_name(prefix: str, *parts: str) -> str:
    """A valid Lease name (RFC 1123 label: lowercase alphanumerics and '-', at most 63)
    for ``prefix`` and ``parts``; a short hash of the raw parts keeps two names that clean
    up alike (``Prod_EU`` and ``prod-eu``) apart."""
    raw = "-".join((prefix, *parts))
    clean = _NOT_DNS.sub("-", raw.lower()).strip("-")
    if clean == raw and len(clean) <= 63:
        return clean
    digest = format(zlib.crc32(raw.encode()), "08x")
    return f"{clean[: 63 - 9].rstrip('-')}-{digest}"


ShardOf = Callable[[str], Shard | None]
"""workflow id -> the shard its writes belong to (None: replicas do not shard)."""


def no_shard(_workflow_id: str) -> Shard | None:
    return None

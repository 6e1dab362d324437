"""Prometheus metrics for aomd, on a registry owned by one ``Metrics`` object.

Why a private ``CollectorRegistry``: the global default registry refuses a second
metric of the same name, so tests (and an embedded demo next to a daemon) could create
only one. Label values are restricted to short known vocabularies (operation names,
action names, HTTP status, outcome) so nothing user- or secret-bearing ever becomes a
label; anything else is folded into ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from daemon.kernel.shards import Shard

NAMESPACE = "aomd"

# Latency buckets for cloud API calls: tens of ms to the 10 s call timeout.
API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# A label value must look like an identifier-ish token; anything else (a URL, an error
# text that might carry a credential) is replaced.
_LABEL_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
OTHER = "other"


def safe_label(value: object) -> str:
    """Clamp a label value to a short, safe token (never a secret-bearing free text)."""
    text = str(value)
    return text if _LABEL_OK.match(text) else OTHER


class Metrics:
    """All aomd metrics. The engine calls the methods; the health server calls ``render``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        ns = NAMESPACE
        self.writes_total = Counter(
            "writes_total",
            "Write calls decided by aomd, by action and outcome.",
            ["action", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.api_calls_total = Counter(
            "api_calls_total",
            "Cloud API calls by operation and HTTP status (or error class).",
            ["operation", "status"],
            namespace=ns,
            registry=r,
        )
        self.api_latency_seconds = Histogram(
            "api_latency_seconds",
            "Cloud API call latency by operation.",
            ["operation"],
            namespace=ns,
            registry=r,
            buckets=API_BUCKETS,
        )
        self.poll_cycle_seconds = Histogram(
            "poll_cycle_seconds",
            "Duration of one watch/reconcile pass.",
            namespace=ns,
            registry=r,
            buckets=CYCLE_BUCKETS,
        )
        self._executions_seen_total = Counter(
            "executions_seen_total",
            "Executions observed (first sighting of each).",
            namespace=ns,
            registry=r,
        )
        self._unhandled_pauses = Gauge(
            "unhandled_pauses",
            "Stopped executions no policy rule handles (a human must act).",
            namespace=ns,
            registry=r,
        )
        self._held_stops = Gauge(
            "held_stops",
            "Stopped nodes whose due action a calendar gate or an override holds.",
            namespace=ns,
            registry=r,
        )
        self._triggers_owned = Gauge(
            "triggers_owned",
            "Workflow triggers currently disabled by aomd (and so owned by it).",
            namespace=ns,
            registry=r,
        )
        self.blast_radius_tripped = Gauge(
            "blast_radius_tripped",
            "1 while the blast-radius write cap refuses writes.",
            namespace=ns,
            registry=r,
        )
        self.breaker_open = Gauge(
            "breaker_open",
            "1 while the API circuit breaker is open.",
            namespace=ns,
            registry=r,
        )
        self._leader = Gauge(
            "leader",
            "1 while this replica may write (is the leader).",
            namespace=ns,
            registry=r,
        )
        self._shard_held = Gauge(
            "shard_held",
            "1 while this replica holds the shard (leader.sharded): account, and bucket "
            "as 'K-of-N' (1-of-1 for a whole account).",
            ["account", "bucket"],
            namespace=ns,
            registry=r,
        )
        self._shard_members = Gauge(
            "shard_members",
            "Replicas this one sees alive in its shard group (itself included).",
            namespace=ns,
            registry=r,
        )
        self.trigger_drift_total = Counter(
            "trigger_drift_total",
            "Triggers found re-enabled inside a freeze (corrected or, with drift: report, "
            "only reported).",
            namespace=ns,
            registry=r,
        )
        self.policy_reloads_total = Counter(
            "policy_reloads_total",
            "Policy reload attempts by result (ok, rejected).",
            ["result"],
            namespace=ns,
            registry=r,
        )
        self.gave_up_total = Counter(
            "gave_up_total",
            "Stopped nodes aomd stopped retrying (attempts or deadline ran out), by the "
            "fallback taken: skip, terminate, or leave (notify a human).",
            ["fallback"],
            namespace=ns,
            registry=r,
        )
        self.journal_errors_total = Counter(
            "journal_errors_total",
            "Journal reads or writes that failed; no write is made without the journal.",
            namespace=ns,
            registry=r,
        )
        self._seen_total = 0
        self._journal_bytes = Gauge(
            "journal_size_bytes",
            "Size of the journal file and its write-ahead log, after the last hourly upkeep "
            "(prune, compaction, incremental vacuum).",
            namespace=ns,
            registry=r,
        )
        self._triggers_unreconciled = Gauge(
            "triggers_unreconciled",
            "Triggers aomd could not put in the state their calendar wants (a change failed "
            "or was refused); 0 once every one is as desired.",
            namespace=ns,
            registry=r,
        )
        self.write_retries_total = Counter(
            "write_retries_total",
            "Prompt retries scheduled for writes that failed without effect (429, 5xx, "
            "connection refused), same key, seconds later.",
            namespace=ns,
            registry=r,
        )
        self.write_retries_exhausted_total = Counter(
            "write_retries_exhausted_total",
            "Writes whose prompt-retry budget ran out (left to the slow lane: the rule's "
            "backoff, the reconcile period).",
            namespace=ns,
            registry=r,
        )
        self.last_reconcile_timestamp = Gauge(
            "last_reconcile_timestamp_seconds",
            "Unix time of the last completed reconcile pass.",
            namespace=ns,
            registry=r,
        )
        self._scan_period = Gauge(
            "watch_scan_period_seconds",
            "Effective period of the change scan (ListWorkflow) per account: the fast "
            "interval, stretched when the fleet needs more calls than the budget.",
            ["account"],
            namespace=ns,
            registry=r,
        )
        self._watch_stretch = Gauge(
            "watch_stretch_ratio",
            "Factor every watch period is stretched by to fit the budget (1 = it fits).",
            ["account"],
            namespace=ns,
            registry=r,
        )
        self._planned_calls = Gauge(
            "watch_planned_calls_per_minute",
            "API calls a minute the account's fleet needs at the nominal watch periods.",
            ["account"],
            namespace=ns,
            registry=r,
        )
        self._calls_per_minute = Gauge(
            "api_calls_per_minute",
            "API calls (every attempt, reads and writes) the account made in the last minute.",
            ["account"],
            namespace=ns,
            registry=r,
        )
        self._budget_calls = Gauge(
            "api_budget_calls_per_minute",
            "The account's rate limit in calls a minute (requests_per_second x 60).",
            ["account"],
            namespace=ns,
            registry=r,
        )

    # -- updates ------------------------------------------------------------------
    def write(self, action: str, outcome: str) -> None:
        self.writes_total.labels(action=safe_label(action), outcome=safe_label(outcome)).inc()

    def api_call(self, operation: str, status: int | str | None, seconds: float) -> None:
        """Matches the client's ``on_call(operation, status, seconds)`` hook."""
        op = safe_label(operation)
        self.api_calls_total.labels(
            operation=op, status=safe_label("none" if status is None else status)
        ).inc()
        self.api_latency_seconds.labels(operation=op).observe(max(0.0, seconds))

    def poll_cycle(self, seconds: float) -> None:
        self.poll_cycle_seconds.observe(max(0.0, seconds))

    def execution_seen(self, count: int = 1) -> None:
        self._executions_seen_total.inc(count)
        self._seen_total += count

    def executions_seen(self, total: int) -> None:
        """Publish a running total (the watchers' counters): the counter moves by the
        increase since the last call; a smaller total (a watcher restarted) is ignored."""
        if total > self._seen_total:
            self._executions_seen_total.inc(total - self._seen_total)
            self._seen_total = total

    def unhandled(self, count: int) -> None:
        """Same as ``set_unhandled_pauses`` (the handler's ``on_unhandled`` hook)."""
        self._unhandled_pauses.set(count)

    def triggers_owned(self, count: int) -> None:
        self._triggers_owned.set(count)

    def leader(self, is_leader: bool) -> None:
        self._leader.set(1 if is_leader else 0)

    def safety(self, blast_radius_tripped: bool, breaker_open: bool) -> None:
        self.set_blast_radius_tripped(blast_radius_tripped)
        self.set_breaker_open(breaker_open)

    def set_unhandled_pauses(self, count: int) -> None:
        self._unhandled_pauses.set(count)

    def set_held_stops(self, count: int) -> None:
        self._held_stops.set(count)

    def set_triggers_owned(self, count: int) -> None:
        self._triggers_owned.set(count)

    def set_blast_radius_tripped(self, tripped: bool) -> None:
        self.blast_radius_tripped.set(1 if tripped else 0)

    def set_breaker_open(self, is_open: bool) -> None:
        self.breaker_open.set(1 if is_open else 0)

    def set_leader(self, is_leader: bool) -> None:
        self._leader.set(1 if is_leader else 0)

    def set_shards(self, held: Mapping[Shard, bool], members: int) -> None:
        for shard, mine in held.items():
            self._shard_held.labels(
                account=safe_label(shard.account), bucket=f"{shard.bucket + 1}-of-{shard.of}"
            ).set(1 if mine else 0)
        self._shard_members.set(members)

    def gave_up(self, fallback: str) -> None:
        self.gave_up_total.labels(fallback=safe_label(fallback)).inc()

    def journal_errors(self, count: int) -> None:
        if count > 0:
            self.journal_errors_total.inc(count)

    def set_journal_bytes(self, size: int) -> None:
        self._journal_bytes.set(size)

    def set_triggers_unreconciled(self, count: int) -> None:
        self._triggers_unreconciled.set(count)

    def write_retries(self, scheduled: int, exhausted: int) -> None:
        """Increments since the last call (sampled from the executor's retry book)."""
        if scheduled > 0:
            self.write_retries_total.inc(scheduled)
        if exhausted > 0:
            self.write_retries_exhausted_total.inc(exhausted)

    def drift(self, count: int) -> None:
        if count > 0:
            self.trigger_drift_total.inc(count)

    def policy_reload(self, ok: bool) -> None:
        self.policy_reloads_total.labels(result="ok" if ok else "rejected").inc()

    def reconciled(self, unix_time: float) -> None:
        self.last_reconcile_timestamp.set(unix_time)

    def watch_budget(
        self,
        account: str,
        *,
        scan_period: float,
        stretch: float,
        planned_per_minute: float,
        calls_per_minute: float,
        budget_per_minute: float,
    ) -> None:
        """One account's watch plan against its budget (sampled once a second)."""
        acc = safe_label(account)
        self._scan_period.labels(account=acc).set(scan_period)
        self._watch_stretch.labels(account=acc).set(stretch)
        self._planned_calls.labels(account=acc).set(planned_per_minute)
        self._calls_per_minute.labels(account=acc).set(calls_per_minute)
        self._budget_calls.labels(account=acc).set(budget_per_minute)

    # -- exposition ---------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Current sample value (tests, the demo summary); ``None`` when absent."""
        v = self.registry.get_sample_value(name, labels or {})
        return None if v is None else float(v)

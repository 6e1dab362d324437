"""A give-up (a rule's fallback write) is counted by fallback kind, other writes not."""

from __future__ import annotations

from daemon.engine.metrics_pump import MetricsPump
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.ops.health import HealthState
from daemon.ops.metrics import Metrics


def _gave_up(metrics: Metrics, fallback: str) -> float:
    value = metrics.registry.get_sample_value("aomd_gave_up_total", {"fallback": fallback})
    return value or 0.0


def test_fallback_writes_count_as_give_ups_by_kind() -> None:
    metrics = Metrics()
    pump = MetricsPump(metrics, HealthState(), [])
    applied = WriteReport("applied")
    pump.on_outcome(
        WriteIntent(key="exec/e1/n1/restart/3", kind="restart", workflow_id="w"), applied
    )
    pump.on_outcome(
        WriteIntent(key="exec/e1/n1/fallback-skip/1", kind="skip", workflow_id="w"), applied
    )
    pump.on_outcome(
        WriteIntent(key="exec/e2/n1/fallback-leave/1", kind="notify", workflow_id="w"), applied
    )
    assert (_gave_up(metrics, "skip"), _gave_up(metrics, "leave")) == (1.0, 1.0)
    assert _gave_up(metrics, "terminate") == 0.0
    writes = metrics.registry.get_sample_value(
        "aomd_writes_total", {"action": "restart", "outcome": "applied"}
    )
    assert writes == 1.0

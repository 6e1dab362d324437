"""Metrics on a private registry: many instances, stable names, safe labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from daemon.ops.metrics import OTHER, Metrics, safe_label


def _names(m: Metrics) -> set[str]:
    body, _ = m.render()
    return {f.name for f in text_string_to_metric_families(body.decode())}


def test_many_instances_do_not_clash() -> None:
    a, b = Metrics(), Metrics()
    a.write("retry", "ok")
    assert a.value("aomd_writes_total", {"action": "retry", "outcome": "ok"}) == 1.0
    assert b.value("aomd_writes_total", {"action": "retry", "outcome": "ok"}) is None


def test_every_metric_is_exposed() -> None:
    m = Metrics()
    m.write("skip", "ok")
    m.api_call("list_executions", 200, 0.05)
    m.poll_cycle(0.3)
    m.execution_seen(3)
    m.set_unhandled_pauses(2)
    m.set_triggers_owned(4)
    m.set_blast_radius_tripped(True)
    m.set_breaker_open(False)
    m.set_leader(True)
    m.policy_reload(ok=False)
    m.reconciled(1_700_000_000.0)
    body, ctype = m.render()
    assert ctype.startswith("text/plain")
    assert {
        "aomd_writes",
        "aomd_api_calls",
        "aomd_api_latency_seconds",
        "aomd_poll_cycle_seconds",
        "aomd_executions_seen",
        "aomd_unhandled_pauses",
        "aomd_triggers_owned",
        "aomd_blast_radius_tripped",
        "aomd_breaker_open",
        "aomd_leader",
        "aomd_policy_reloads",
        "aomd_last_reconcile_timestamp_seconds",
    } <= _names(m)
    assert m.value("aomd_api_calls_total", {"operation": "list_executions", "status": "200"}) == 1
    assert m.value("aomd_api_latency_seconds_count", {"operation": "list_executions"}) == 1
    assert m.value("aomd_executions_seen_total") == 3
    assert m.value("aomd_blast_radius_tripped") == 1
    assert m.value("aomd_leader") == 1
    assert m.value("aomd_policy_reloads_total", {"result": "rejected"}) == 1
    assert b"aomd_triggers_owned 4.0" in body


def test_free_text_never_becomes_a_label() -> None:
    m = Metrics()
    secretish = "https://x/?sk=SKabc def"
    m.api_call(secretish, "AOM.31001302 bad token=abc", 0.1)
    m.write("retry", None)  # type: ignore[arg-type]
    body, _ = m.render()
    assert b"SKabc" not in body
    assert b"token=abc" not in body
    assert m.value("aomd_api_calls_total", {"operation": OTHER, "status": OTHER}) == 1


def test_safe_label() -> None:
    assert safe_label("set_trigger") == "set_trigger"
    assert safe_label(429) == "429"
    assert safe_label("a b") == OTHER
    assert safe_label("x" * 65) == OTHER


def test_engine_short_forms() -> None:
    m = Metrics()
    m.unhandled(3)
    m.triggers_owned(2)
    m.leader(True)
    m.safety(False, True)
    m.executions_seen(5)
    m.executions_seen(7)
    m.executions_seen(4)  # a restarted watcher's smaller total is ignored
    m.execution_seen()
    assert m.value("aomd_unhandled_pauses") == 3
    assert m.value("aomd_triggers_owned") == 2
    assert m.value("aomd_leader") == 1
    assert m.value("aomd_blast_radius_tripped") == 0
    assert m.value("aomd_breaker_open") == 1
    assert m.value("aomd_executions_seen_total") == 8


def test_drift_is_counted() -> None:
    m = Metrics()
    m.drift(0)
    m.drift(2)
    assert m.value("aomd_trigger_drift_total") == 2.0
    assert b"aomd_trigger_drift_total 2.0" in m.render()[0]


def test_watch_budget_gauges_are_per_account() -> None:
    m = Metrics()
    m.watch_budget(
        "acc-1",
        scan_period=7.5,
        stretch=1.5,
        planned_per_minute=720.0,
        calls_per_minute=470.0,
        budget_per_minute=600.0,
    )
    acc = {"account": "acc-1"}
    assert m.value("aomd_watch_scan_period_seconds", acc) == 7.5
    assert m.value("aomd_watch_stretch_ratio", acc) == 1.5
    assert m.value("aomd_watch_planned_calls_per_minute", acc) == 720.0
    assert m.value("aomd_api_calls_per_minute", acc) == 470.0
    assert m.value("aomd_api_budget_calls_per_minute", acc) == 600.0
    m.watch_budget(
        "acc 2 / secret?",
        scan_period=5,
        stretch=1,
        planned_per_minute=1,
        calls_per_minute=1,
        budget_per_minute=1,
    )
    assert m.value("aomd_watch_scan_period_seconds", {"account": "other"}) == 5

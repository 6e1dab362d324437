"""``deploy/monitoring``: every metric an alert rule or a dashboard panel names is one
aomd exports (issue #15), so a renamed metric cannot leave a silent alert behind.
``make deploy-check`` runs ``promtool check rules`` on the same file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from daemon.ops.metrics import Metrics

PACK = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"
METRIC = re.compile(r"\b(aomd_[a-z0-9_]+)")
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target."""
REQUIRED_ALERTS = {
    "AomdDown",
    "AomdBreakerOpen",
    "AomdBlastRadiusCapHit",
    "AomdUnhandledStops",
    "AomdGaveUp",
    "AomdTriggerDrift",
    "AomdJournalErrors",
    "AomdApiBudgetExhausted",
}


def exported() -> set[str]:
    """Every series name aomd's registry can produce, suffixes included."""
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PACK / "aomd-alerts.yaml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _panel_exprs() -> list[str]:
    dash = json.loads((PACK / "aomd-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_alert_names_only_exported_metrics() -> None:
    known = exported()
    for rule in _rules():
        used = set(METRIC.findall(rule["expr"]))
        assert used or "up{" in rule["expr"], rule["alert"]
        assert used <= known, (rule["alert"], used - known)


def test_every_dashboard_panel_names_only_exported_metrics() -> None:
    known = exported()
    exprs = _panel_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used, expr
        assert used <= known, (expr, used - known)


def test_the_alerts_the_issue_asks_for_exist_with_a_severity_and_a_summary() -> None:
    rules = {r["alert"]: r for r in _rules()}
    assert set(rules) >= REQUIRED_ALERTS
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]


def test_the_check_catches_a_misspelt_metric() -> None:
    """The test can fail: a name aomd does not export is reported."""
    assert not {"aomd_breaker_opened"} <= exported()
    assert {
        "aomd_breaker_open",
        "aomd_writes_total",
        "aomd_api_latency_seconds_bucket",
    } <= exported()

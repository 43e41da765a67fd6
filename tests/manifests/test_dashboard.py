"""The chart's Grafana dashboard asks only for metrics Gibbous exports: the names are
collected from the autoscaler's, webhook's and extender's registries in this process."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from gibbous.autoscaler.metrics import AutoscalerMetrics
from gibbous.extender.app import ExtenderMetrics
from gibbous.webhook.metrics import WebhookMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/gibbous/dashboards/gibbous.json"
# What the exposition format adds to a family's name, by type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_names(*registries: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def queried_names(expr: str) -> set[str]:
    return set(re.findall(r"\bgibbous_[a-z0-9_]+", expr))


def test_every_query_names_an_exported_metric() -> None:
    exported = exported_names(
        AutoscalerMetrics().registry, WebhookMetrics().registry, ExtenderMetrics().registry
    )
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 9
    for expr in queries:
        named = queried_names(expr)
        assert named, expr
        assert named <= exported, (expr, named - exported)


def test_the_panels_the_operators_asked_for_are_there() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set().union(
        *(queried_names(t["expr"]) for p in dashboard["panels"] for t in p["targets"])
    )
    assert {
        "gibbous_autoscaler_node_cost_per_hour",
        "gibbous_autoscaler_decisions_total",
        "gibbous_autoscaler_launches_total",
        "gibbous_autoscaler_launch_failures_total",
        "gibbous_autoscaler_pods_pending_by_reason",
        "gibbous_autoscaler_step_duration_seconds_bucket",
        "gibbous_webhook_request_duration_seconds_bucket",
        "gibbous_extender_request_duration_seconds_bucket",
    } <= queried


def test_a_misspelt_metric_is_caught() -> None:
    exported = exported_names(AutoscalerMetrics().registry)
    assert "gibbous_autoscaler_decisions_total" in exported
    assert "gibbous_autoscaler_decision_total" not in exported

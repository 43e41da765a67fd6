"""Prometheus metrics of the webhook, in a registry of its own (one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class WebhookMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "gibbous_webhook_requests",
            "Admission requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gibbous_webhook_request_duration_seconds",
            "Time to answer an admission request",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.patches = Counter(
            "gibbous_webhook_patch_operations",
            "JSON Patch operations returned",
            registry=self.registry,
        )
        self.denials = Counter(
            "gibbous_webhook_denials", "Pods refused by validation", registry=self.registry
        )
        self.internal_errors = Counter(
            "gibbous_webhook_internal_errors",
            "Requests allowed unchanged because of an internal error",
            ["endpoint"],
            registry=self.registry,
        )

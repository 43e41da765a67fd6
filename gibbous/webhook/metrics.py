"""Prometheus metrics of the webhook, in a registry of its own (one per app).

The admission path counts with plain integers and a bisect into histogram buckets, and
the registry reads them at scrape time through a custom collector: prometheus_client's
own Counter and Histogram take a lock per update, which cost about a tenth of a request
here. The webhook updates them only on its event-loop thread, so no lock is needed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


T = TypeVar("T", Count, Latency)


class Labelled(Generic[T]):
    """One child per label values, created on first use, as prometheus_client's `labels()`."""

    def __init__(self, make: type[T]) -> None:
        self.make: type[T] = make
        self.children: dict[tuple[str, ...], T] = {}

    def labels(self, *values: str) -> T:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.make()
        return child


@dataclass(eq=False)  # registered as a collector: must stay hashable
class WebhookMetrics(Collector):
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Labelled(Count)  # (endpoint, outcome)
        self.latency = Labelled(Latency)  # (endpoint,)
        self.patches = Count()
        self.denials = Count()
        self.internal_errors = Labelled(Count)  # (endpoint,)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gibbous_webhook_requests",
            "Admission requests by endpoint and outcome",
            labels=["endpoint", "outcome"],
        )
        for values, count in self.requests.children.items():
            requests.add_metric(list(values), count.value)
        yield requests
        latency = HistogramMetricFamily(
            "gibbous_webhook_request_duration_seconds",
            "Time to answer an admission request",
            labels=["endpoint"],
        )
        for values, histogram in self.latency.children.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip(
                (*LATENCY_BUCKETS, float("inf")), histogram.counts, strict=True
            ):
                cumulative += in_bucket
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric(list(values), buckets, histogram.total)
        yield latency
        patches = CounterMetricFamily(
            "gibbous_webhook_patch_operations", "JSON Patch operations returned"
        )
        patches.add_metric([], self.patches.value)
        yield patches
        denials = CounterMetricFamily("gibbous_webhook_denials", "Pods refused by validation")
        denials.add_metric([], self.denials.value)
        yield denials
        errors = CounterMetricFamily(
            "gibbous_webhook_internal_errors",
            "Requests allowed unchanged because of an internal error",
            labels=["endpoint"],
        )
        for values, count in self.internal_errors.children.items():
            errors.add_metric(list(values), count.value)
        yield errors

"""The autoscaler process around the loop: its thread, its probes and its metrics."""

from __future__ import annotations

import time

from starlette.testclient import TestClient

from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.loop import Autoscaler
from gibbous.autoscaler.process import AutoscalerService
from tests.autoscaler.fakes import FakeCluster
from tests.factories import catalog, config, make_pod


class Caches:
    def __init__(self) -> None:
        self.synced = False
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def ready(self) -> bool:
        return self.synced


def test_probes_follow_the_caches_and_the_loop() -> None:
    cfg = config()
    provider = FakeCloudProvider(catalog(), time.time)
    cluster = FakeCluster(provider, cfg)
    cluster.add(make_pod("p", cpu="3"))
    caches = Caches()
    service = AutoscalerService(
        Autoscaler(cfg, provider, cluster, clock=time.time), caches, period_s=0.05
    )
    service.start()
    try:
        http = TestClient(service.app())
        assert http.get("/readyz").status_code == 503  # caches not synced: the loop waits
        assert service.steps == 0
        caches.synced = True
        deadline = time.monotonic() + 10
        while not provider.create_calls:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.get("/readyz").text == "ready (leader)"
        assert http.get("/healthz").status_code == 200
        assert "gibbous_autoscaler_launches_total" in http.get("/metrics").text
    finally:
        service.stop()
    assert caches.stopped and service.healthy() is False

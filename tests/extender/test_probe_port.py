"""`gibbous extender --probe-listen`: the plain-HTTP port beside the mutual-TLS one serves
the kubelet's probes and Prometheus, and never the scheduler's endpoints."""

from __future__ import annotations

from starlette.testclient import TestClient

from gibbous.core.settings.config import Config
from gibbous.extender.app import create_app, probe_app
from gibbous.extender.state import StaticView


def test_the_probe_port_serves_health_and_metrics_only() -> None:
    probes = TestClient(probe_app(create_app(Config(), StaticView())))
    assert probes.get("/healthz").status_code == 200
    assert probes.get("/metrics").status_code == 200
    assert "gibbous_extender_requests" in probes.get("/metrics").text
    body = {"Pod": {}, "NodeNames": ["a"]}
    for path in ("/filter", "/prioritize"):
        assert probes.post(path, json=body).status_code == 404
        assert probes.get(path).status_code == 404
    assert probes.post("/healthz").status_code == 404

"""A real webhook server over real TLS on 127.0.0.1, for the HTTP tests."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gibbous.certs.authority import KeyPair, generate_ca, generate_serving, write_bundle
from gibbous.core.admission.mutation import ServerFeatures
from gibbous.core.settings.config import Config
from gibbous.serving import Listen, TLSServer
from gibbous.webhook.app import create_app
from gibbous.webhook.metrics import WebhookMetrics
from tests.factories import config as make_config


@dataclass
class RunningWebhook:
    url: str
    ca_file: Path
    cert_dir: Path
    ca: KeyPair
    server: TLSServer
    metrics: WebhookMetrics

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=10,
        )


def start_webhook(
    tmp: Path, cfg: Config, features: ServerFeatures | None = None, reload_s: float = 0.05
) -> tuple[RunningWebhook, threading.Thread]:
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="test CA", days=30, now=now)
    serving = generate_serving(
        ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=10, now=now
    )
    paths = write_bundle(tmp, ca, serving)
    metrics = WebhookMetrics()
    app = create_app(cfg, features or ServerFeatures(scheduling_gates=True), metrics)
    server = TLSServer(
        app,
        Listen("127.0.0.1", 0),
        str(paths["tls.crt"]),
        str(paths["tls.key"]),
        reload_interval_s=reload_s,
        log_level="warning",
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("webhook server did not start")
        time.sleep(0.01)
    url = f"https://127.0.0.1:{server.bound_port()}"
    return RunningWebhook(url, paths["ca.crt"], tmp, ca, server, metrics), thread


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[RunningWebhook]:
    running, thread = start_webhook(
        tmp_path, make_config(provisioningGate=True, cloudProvider="azure")
    )
    yield running
    running.server.stop()
    thread.join(timeout=10)

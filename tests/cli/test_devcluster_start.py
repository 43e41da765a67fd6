"""`gibbous dev-cluster up` starts each Gibbous process on a free port; a port taken between
choosing it and binding it must not fail the whole cluster."""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path
from typing import cast

import pytest

from gibbous.certs.authority import generate_ca, generate_serving, write_bundle
from gibbous.devcluster import controlplane, stack
from gibbous.devcluster.binaries import Binaries
from gibbous.devcluster.controlplane import ControlPlane


def test_a_component_whose_port_was_taken_is_started_again_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = generate_ca(common_name="test-ca", days=1, now=now)
    serving = generate_serving(
        ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=1, now=now
    )
    files = write_bundle(tmp_path / "tls", ca, serving)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        offered = iter([busy])
        real = controlplane.free_port
        monkeypatch.setattr(stack, "free_port", lambda: next(offered, None) or real())
        plane = ControlPlane(cast(Binaries, None), tmp_path)
        cluster = stack.DevCluster(tmp_path)
        try:
            port = cluster._start_component(
                plane,
                "webhook",
                [
                    f"--tls-cert={files['tls.crt']}",
                    f"--tls-key={files['tls.key']}",
                    "--scheduling-gates=off",
                ],
                health_path="/healthz",
                context=ssl.create_default_context(cafile=str(files["ca.crt"])),
                timeout_s=60,
            )
        finally:
            plane.stop()
    assert port != busy
    assert "address already in use" in (tmp_path / "gibbous-webhook.log").read_text().lower()


def test_start_over_only_while_a_spawned_process_exited() -> None:
    calls: list[str] = []

    def failing() -> int:
        calls.append("start")
        raise controlplane.ControlPlaneError("not healthy")

    with pytest.raises(controlplane.ControlPlaneError):
        controlplane.start_over_when_exited(
            failing, lambda: False, clean_up=lambda: calls.append("clean")
        )
    assert calls == ["start", "clean"]  # still running (a hang, a bad flag): no retry

    calls.clear()
    with pytest.raises(controlplane.ControlPlaneError):
        controlplane.start_over_when_exited(
            failing, lambda: True, clean_up=lambda: calls.append("clean")
        )
    assert calls == ["start", "clean"] * 3  # exited each time: three tries, then the error

    tries = iter(range(2))

    def second_time_lucky() -> int:
        if next(tries) == 0:
            raise controlplane.ControlPlaneError("port taken")
        return 4242

    assert controlplane.start_over_when_exited(second_time_lucky, lambda: True) == 4242

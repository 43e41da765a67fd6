"""The test control plane survives a port that is taken between choosing and binding it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gibbous.devcluster import controlplane
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e


def test_a_taken_port_makes_the_control_plane_start_over_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        offered = iter([busy])  # the first port asked for (etcd's) is already in use
        real = controlplane.free_port
        monkeypatch.setattr(controlplane, "free_port", lambda: next(offered, None) or real())
        plane = ControlPlane(find_binaries(), tmp_path / "plane")
        try:
            plane.start(controller_manager=False, timeout_s=60)
            assert plane.etcd_port != busy
            assert plane.processes["kube-apiserver"].poll() is None
        finally:
            plane.stop()

"""What every cloud's node agent shares: the kubelet's part (and the cloud node
controller's) for the machines one emulated cloud runs, whatever the cloud.

A cloud's agent (`gibbous.devcluster.<cloud>.agent`) finds the machines that booted and
what its cloud's bootstrap would put on their Nodes; `KubeletFleet` registers those Nodes,
keeps them Ready and their Leases fresh, runs and finishes their pods, deletes a Node when
its machine goes, and does what the control plane's node lifecycle controller would (the
test control plane runs without it): takes the `node.kubernetes.io/not-ready` taint the API
server puts on new Nodes off once they are Ready.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from gibbous.kubeletsim import (
    clear_not_ready_taint,
    finish_deletions,
    node_status,
    renew_lease,
    run_pods,
)

log = logging.getLogger("gibbous.nodeagent")


@dataclass
class KubeletFleet(abc.ABC):
    """What every cloud's node agent does once it knows a machine runs: register its Node
    (only what the cloud's bootstrap and kubelet would put on it), keep it Ready and its
    Lease fresh, run and finish its pods, and delete it when the machine goes."""

    api: client.ApiClient
    clock: Callable[[], float]
    kubelet_version: str = "v1.37.2-emulated"
    registered: dict[str, str] = field(default_factory=dict)  # machine id -> node name

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def register(
        self,
        machine_id: str,
        name: str,
        *,
        labels: Mapping[str, str],
        taints: list[dict[str, str]],
        provider_id: str,
        capacity: Mapping[str, str],
        allocatable: Mapping[str, str],
        arch: str,
        now: float,
    ) -> None:
        body = {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"providerID": provider_id, "taints": taints or None},
        }
        try:
            self.core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
        self.core.patch_node_status(
            name,
            {
                "status": node_status(
                    capacity,
                    allocatable,
                    ready=True,
                    now=now,
                    architecture=arch,
                    kubelet=self.kubelet_version,
                )
            },
        )
        self.registered[machine_id] = name

    def heartbeats(self, now: float) -> None:
        for name in self.registered.values():
            self._heartbeat(name, now)

    def forget_gone(self, running: Iterable[str]) -> None:
        """Delete the Nodes of machines no longer running, as the cloud's node controller."""
        live = set(running)
        for machine_id, name in list(self.registered.items()):
            if machine_id not in live:
                self._remove(machine_id, name)

    def _heartbeat(self, name: str, now: float) -> None:
        try:
            node = self.core.read_node(name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        updated = self.core.patch_node_status(
            name,
            {
                "status": node_status(
                    dict(node.status.capacity or {}),
                    dict(node.status.allocatable or {}),
                    ready=True,
                    now=now,
                    architecture=node.status.node_info.architecture
                    if node.status.node_info
                    else "amd64",
                    kubelet=self.kubelet_version,
                )
            },
        )
        clear_not_ready_taint(self.core, updated)
        renew_lease(self.coordination, name, node.metadata.uid, now)
        run_pods(self.core, name, now)
        finish_deletions(self.core, name, now)

    def _remove(self, machine_id: str, name: str) -> None:
        try:
            self.core.delete_node(name)
        except ApiException as error:
            if error.status != 404:
                raise
        del self.registered[machine_id]
        log.info("removed node %s: machine %s is gone", name, machine_id)

    @abc.abstractmethod
    def step(self) -> None:
        """Register the machines that booted, keep the fleet's Nodes alive."""

    def run(self, stopped: threading.Event, period_s: float = 1.0) -> None:
        while not stopped.is_set():
            try:
                self.step()
            except Exception:
                log.exception("node agent step failed; retrying")
            stopped.wait(period_s)

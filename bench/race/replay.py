"""A trace into a cluster: each event applied at its time, as Deployments in namespace `race`."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.race.trace import Event, PodShape, Trace
from gibbous.core import keys

NAMESPACE = "race"
WORKLOAD_LABEL = "race.gibbous.dev/workload"
MANAGED_LABEL = ("elotl-luna", "true")  # the chart's default `labels`
OFFERINGS = "node.elotl.co/instance-offerings"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def pod_template(workload: str, shape: PodShape) -> dict[str, Any]:
    """The pod as a user of both systems writes it: the management label Gibbous's chart
    defaults to (Karpenter ignores it), the accepted capacity types as a
    `karpenter.sh/capacity-type` nodeSelector (Karpenter's words, which Gibbous also reads)
    and, where spot is accepted, Luna's `node.elotl.co/instance-offerings` annotation
    (Gibbous's words: without it Gibbous launches on-demand only)."""
    annotations: dict[str, str] = {}
    selector: dict[str, str] = {}
    if shape.capacity == "on-demand":
        selector[keys.KARPENTER_CAPACITY_TYPE] = "on-demand"
    elif shape.capacity == "spot":
        selector[keys.KARPENTER_CAPACITY_TYPE] = "spot"
        annotations[OFFERINGS] = "spot"
    else:
        annotations[OFFERINGS] = "spot,on-demand"
    if shape.zone:
        selector[keys.ZONE] = shape.zone
    if shape.usage:
        annotations[keys.SIMULATED_USAGE] = shape.usage
    resources: dict[str, Any] = {"requests": {"cpu": shape.cpu, "memory": shape.memory}}
    if shape.gpus:
        resources["limits"] = {keys.NVIDIA_GPU: str(shape.gpus)}
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": PAUSE_IMAGE, "resources": resources}]
    }
    if selector:
        spec["nodeSelector"] = selector
    return {
        "metadata": {
            "labels": {WORKLOAD_LABEL: workload, MANAGED_LABEL[0]: MANAGED_LABEL[1]},
            "annotations": annotations,
        },
        "spec": spec,
    }


def deployment(event: Event) -> dict[str, Any]:
    assert event.pod is not None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": event.workload, "namespace": NAMESPACE},
        "spec": {
            "replicas": event.replicas,
            "selector": {"matchLabels": {WORKLOAD_LABEL: event.workload}},
            "template": pod_template(event.workload, event.pod),
        },
    }


def prepare(api: client.ApiClient) -> None:
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise


def apply(api: client.ApiClient, event: Event) -> None:
    apps = client.AppsV1Api(api)
    if event.op == "create":
        apps.create_namespaced_deployment(NAMESPACE, deployment(event))
    elif event.op == "scale":
        apps.patch_namespaced_deployment_scale(
            event.workload, NAMESPACE, {"spec": {"replicas": event.replicas}}
        )
    else:
        apps.delete_namespaced_deployment(
            event.workload, NAMESPACE, propagation_policy="Background"
        )


class Replay:
    """Applies `trace` from `start` (a time.monotonic() value) in a thread; errors are kept
    and raised by `join`."""

    def __init__(self, api: client.ApiClient, trace: Trace, start: float) -> None:
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(api, trace, start), name="race-replay", daemon=True
        )

    def begin(self) -> None:
        self._thread.start()

    def _run(self, api: client.ApiClient, trace: Trace, start: float) -> None:
        try:
            for event in trace.events:
                if self._stop.wait(max(0.0, start + event.at - time.monotonic())):
                    return
                _retrying(functools.partial(apply, api, event))
        except BaseException as error:  # reported by join()
            self.errors.append(error)

    def join(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.errors:
            raise self.errors[0]


def _retrying(call: Callable[[], None], attempts: int = 5) -> None:
    for attempt in range(attempts):
        try:
            call()
            return
        except ApiException as error:
            if error.status not in (409, 429, 500, 503) or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))

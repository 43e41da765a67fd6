"""KubeRay objects counted as the KubeRay operator creates their pods
(ray-project/kuberay `ray-operator`; scheduling-fidelity-facts section 7).

* Worker group pods: `GetWorkerGroupDesiredReplicas` = clamp(replicas, minReplicas,
  maxReplicas) x numOfHosts (replicas below min, or missing, become min; defaults 0,
  0, 2^31-1, numOfHosts 1); a suspended group has none. Each worker gets the
  `wait-gcs-ready` init container (requests and limits 200m / 256Mi), which raises a
  smaller worker's effective request (`DefaultWorkerPodTemplate`).
* Head pod: with `enableInTreeAutoscaling`, the autoscaler container (500m / 512Mi
  requests and limits, or `autoscalerOptions.resources` in their place:
  `BuildAutoscalerContainer`, `mergeAutoscalerOverrides`).
* A suspended RayCluster or RayJob has no pods.
* RayJob: its own cluster from `rayClusterSpec`, none when `clusterSelector` names an
  existing one. `submissionMode` K8sJobMode (the default) adds a submitter pod
  (`submitterPodTemplate`, or one container of 500m / 200Mi requests, 1 / 1Gi limits:
  `GetDefaultSubmitterContainer`); SidecarMode adds that container to the head pod;
  HTTPMode and InteractiveMode add nothing.
* RayService: one cluster from `rayClusterConfig` (the upgrade overlap is transient).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gibbous.core.errors import ManifestError
from gibbous.core.podmodel.pods import as_map
from gibbous.core.podmodel.workloads import Workload, pod_template, whole_number

RAY_KINDS = ("RayCluster", "RayJob", "RayService")
_MAX_REPLICAS = 2**31 - 1

AUTOSCALER_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}
SUBMITTER_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "200Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
WAIT_GCS_READY_RESOURCES = {
    "requests": {"cpu": "200m", "memory": "256Mi"},
    "limits": {"cpu": "200m", "memory": "256Mi"},
}


def worker_group_pods(group: Mapping[str, Any], where: str) -> int:
    """KubeRay's GetWorkerGroupDesiredReplicas."""
    if group.get("suspend") is True:
        return 0
    least = whole_number(group.get("minReplicas"), 0, f"{where}.minReplicas")
    most = whole_number(group.get("maxReplicas"), _MAX_REPLICAS, f"{where}.maxReplicas")
    if least > most:
        raise ManifestError(f"{where}: minReplicas {least} is more than maxReplicas {most}")
    replicas = group.get("replicas")
    count = (
        least
        if replicas is None
        else min(max(whole_number(replicas, 0, f"{where}.replicas"), least), most)
    )
    return count * whole_number(group.get("numOfHosts"), 1, f"{where}.numOfHosts")


def _with_containers(
    template: Mapping[str, Any],
    *,
    containers: tuple[dict[str, Any], ...] = (),
    init_containers: tuple[dict[str, Any], ...] = (),
) -> Mapping[str, Any]:
    if not containers and not init_containers:
        return template
    spec = as_map(template.get("spec"))
    return {
        **template,
        "spec": {
            **spec,
            "containers": [*(spec.get("containers") or []), *containers],
            "initContainers": [*(spec.get("initContainers") or []), *init_containers],
        },
    }


def _submitter_container() -> dict[str, Any]:
    return {"name": "ray-job-submitter", "resources": SUBMITTER_RESOURCES}


def ray_cluster_workloads(
    cluster: Mapping[str, Any],
    name: str,
    namespace: str,
    kind: str,
    where: str,
    *,
    submitter_in_head: bool = False,
) -> list[Workload]:
    """The head and worker groups of one Ray cluster spec."""
    head_extra = []
    if cluster.get("enableInTreeAutoscaling") is True:
        options = as_map(cluster.get("autoscalerOptions"))
        resources = options.get("resources")
        head_extra.append(
            {
                "name": "autoscaler",
                "resources": resources if isinstance(resources, Mapping) else AUTOSCALER_RESOURCES,
            }
        )
    if submitter_in_head:
        head_extra.append(_submitter_container())
    head = pod_template(cluster, "headGroupSpec.template", f"{where} headGroupSpec")
    out = [
        Workload(
            f"{name}/head", namespace, kind, 1, _with_containers(head, containers=tuple(head_extra))
        )
    ]
    groups = cluster.get("workerGroupSpecs") or []
    if not isinstance(groups, list):
        raise ManifestError(f"{where} workerGroupSpecs: expected a list")
    for index, group in enumerate(groups):
        if not isinstance(group, Mapping):
            continue
        group_where = f"{where} workerGroupSpecs[{index}]"
        template = pod_template(group, "template", group_where)
        wait = {"name": "wait-gcs-ready", "resources": WAIT_GCS_READY_RESOURCES}
        out.append(
            Workload(
                f"{name}/{group.get('groupName') or f'worker-{index}'}",
                namespace,
                kind,
                worker_group_pods(group, group_where),
                _with_containers(template, init_containers=(wait,)),
            )
        )
    return out


def ray_workloads(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    """Workloads of a RayCluster, RayJob or RayService, and notes on what is not counted."""
    kind = str(doc.get("kind"))
    spec = as_map(doc.get("spec"))
    if spec.get("suspend") is True:
        return [], [f"{where}: suspended: no pods until spec.suspend is false"]
    if kind == "RayCluster":
        return ray_cluster_workloads(spec, name, namespace, kind, where), []
    if kind == "RayService":
        cluster = spec.get("rayClusterConfig")
        if not isinstance(cluster, Mapping):
            raise ManifestError(f"{where}: spec.rayClusterConfig is missing")
        return ray_cluster_workloads(cluster, name, namespace, kind, where), []
    mode = spec.get("submissionMode") or "K8sJobMode"
    if mode not in ("K8sJobMode", "SidecarMode", "HTTPMode", "InteractiveMode"):
        raise ManifestError(f"{where}: spec.submissionMode {mode!r} is not a KubeRay mode")
    workloads: list[Workload] = []
    notes: list[str] = []
    cluster = spec.get("rayClusterSpec")
    if as_map(spec.get("clusterSelector")):
        notes.append(
            f"{where}: runs on an existing RayCluster (spec.clusterSelector); that cluster's "
            "pods are not counted here"
        )
    elif isinstance(cluster, Mapping):
        workloads = ray_cluster_workloads(
            cluster, name, namespace, kind, where, submitter_in_head=mode == "SidecarMode"
        )
    else:
        raise ManifestError(f"{where}: neither spec.rayClusterSpec nor spec.clusterSelector")
    if mode == "K8sJobMode":
        submitter: Mapping[str, Any]
        if isinstance(spec.get("submitterPodTemplate"), Mapping):
            submitter = pod_template(doc, "spec.submitterPodTemplate", where)
        else:
            submitter = {"metadata": {}, "spec": {"containers": [_submitter_container()]}}
        workloads.append(Workload(f"{name}/submitter", namespace, kind, 1, submitter))
    return workloads, notes

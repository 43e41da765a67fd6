"""KubeRay objects counted as the operator creates their pods. Expected counts and requests
come from KubeRay's source (ray-operator: GetWorkerGroupDesiredReplicas,
BuildAutoscalerContainer, mergeAutoscalerOverrides, GetDefaultSubmitterContainer,
DefaultWorkerPodTemplate's wait-gcs-ready) and kube-scheduler's PodRequests, as cited."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.errors import ManifestError
from gibbous.core.planning.estimate import expand_workloads, workload_pods
from gibbous.core.podmodel.kuberay import worker_group_pods
from gibbous.core.podmodel.pods import pod_requests
from gibbous.core.podmodel.resources import Resources

MI = 1 << 20


def container(cpu: str, memory: str) -> dict[str, Any]:
    return {
        "name": "ray",
        "image": "rayproject/ray",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }


def template(cpu: str = "2", memory: str = "4Gi") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"elotl-luna": "true"}},
        "spec": {"containers": [container(cpu, memory)]},
    }


def cluster(**extra: Any) -> dict[str, Any]:
    return {
        "headGroupSpec": {"template": template()},
        "workerGroupSpecs": [{"groupName": "w", "replicas": 2, "template": template()}],
        **extra,
    }


def expand(doc: dict[str, Any]) -> tuple[dict[str, int], dict[str, Resources], list[str]]:
    workloads, notes = expand_workloads([doc])
    counts = {w.name: w.replicas for w in workloads}
    requests = {w.name: pod_requests(workload_pods(w)[0]) for w in workloads if w.replicas}
    return counts, requests, notes


@pytest.mark.parametrize(
    ("group", "pods"),
    [
        ({"replicas": 5, "minReplicas": 1, "maxReplicas": 3, "numOfHosts": 4}, 12),
        ({"minReplicas": 2}, 2),
        ({"replicas": 2, "numOfHosts": 4}, 8),  # a multi-host TPU group: 2 slices x 4 hosts
        ({"replicas": 0, "minReplicas": 1}, 1),
        ({"replicas": 3, "suspend": True}, 0),
        ({"replicas": 3, "numOfHosts": 0}, 0),
        ({}, 0),  # CRD defaults: replicas 0, minReplicas 0
    ],
)
def test_worker_group_pods_as_get_worker_group_desired_replicas(
    group: dict[str, Any], pods: int
) -> None:
    assert worker_group_pods(group, "g") == pods


def test_min_above_max_is_refused_as_kuberay_validation_does() -> None:
    with pytest.raises(ManifestError, match="minReplicas 3 is more than maxReplicas 1"):
        worker_group_pods({"minReplicas": 3, "maxReplicas": 1}, "g")


def test_workers_get_the_wait_gcs_ready_init_container() -> None:
    # A 100m/128Mi worker: the init container's 200m/256Mi is larger, and init containers
    # count by the max rule, so the pod needs 200m/256Mi.
    spec = cluster()
    spec["workerGroupSpecs"][0]["template"] = template("100m", "128Mi")
    doc = {"kind": "RayCluster", "metadata": {"name": "rc"}, "spec": spec}
    _, requests, _ = expand(doc)
    assert requests["rc/w"] == Resources(cpu_millis=200, memory_bytes=256 * MI, pods=1)


def test_in_tree_autoscaling_adds_the_autoscaler_container_to_the_head() -> None:
    spec = cluster(enableInTreeAutoscaling=True)
    doc = {"kind": "RayCluster", "metadata": {"name": "rc"}, "spec": spec}
    _, requests, _ = expand(doc)
    assert requests["rc/head"] == Resources(
        cpu_millis=2500, memory_bytes=4096 * MI + 512 * MI, pods=1
    )
    # autoscalerOptions.resources replaces the whole requirement; limits alone become requests.
    spec["autoscalerOptions"] = {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    _, requests, _ = expand(doc)
    assert requests["rc/head"] == Resources(cpu_millis=3000, memory_bytes=5 << 30, pods=1)


def test_a_rayjob_in_k8s_job_mode_has_a_submitter_pod() -> None:
    doc = {"kind": "RayJob", "metadata": {"name": "job"}, "spec": {"rayClusterSpec": cluster()}}
    counts, requests, _ = expand(doc)
    assert counts == {"job/head": 1, "job/w": 2, "job/submitter": 1}
    assert requests["job/submitter"] == Resources(cpu_millis=500, memory_bytes=200 * MI, pods=1)


def test_a_rayjob_submitter_template_is_used_as_given() -> None:
    spec = {"rayClusterSpec": cluster(), "submitterPodTemplate": template("250m", "100Mi")}
    _, requests, _ = expand({"kind": "RayJob", "metadata": {"name": "job"}, "spec": spec})
    assert requests["job/submitter"] == Resources(cpu_millis=250, memory_bytes=100 * MI, pods=1)


def test_sidecar_mode_puts_the_submitter_in_the_head() -> None:
    spec = {"rayClusterSpec": cluster(), "submissionMode": "SidecarMode"}
    counts, requests, _ = expand({"kind": "RayJob", "metadata": {"name": "job"}, "spec": spec})
    assert "job/submitter" not in counts
    assert requests["job/head"] == Resources(
        cpu_millis=2500, memory_bytes=4096 * MI + 200 * MI, pods=1
    )


@pytest.mark.parametrize("mode", ["HTTPMode", "InteractiveMode"])
def test_http_and_interactive_modes_add_no_pod(mode: str) -> None:
    spec = {"rayClusterSpec": cluster(), "submissionMode": mode}
    counts, _, _ = expand({"kind": "RayJob", "metadata": {"name": "job"}, "spec": spec})
    assert counts == {"job/head": 1, "job/w": 2}


def test_suspended_objects_have_no_pods_and_say_so() -> None:
    for kind, spec in (
        ("RayCluster", {**cluster(), "suspend": True}),
        ("RayJob", {"rayClusterSpec": cluster(), "suspend": True}),
    ):
        counts, _, notes = expand({"kind": kind, "metadata": {"name": "x"}, "spec": spec})
        assert counts == {}
        assert any("suspended" in n for n in notes)


def test_a_rayjob_on_an_existing_cluster_counts_only_its_submitter_and_says_so() -> None:
    spec = {"clusterSelector": {"ray.io/cluster": "shared"}}
    counts, _, notes = expand({"kind": "RayJob", "metadata": {"name": "job"}, "spec": spec})
    assert counts == {"job/submitter": 1}
    assert any("existing RayCluster" in n for n in notes)

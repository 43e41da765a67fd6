"""The typed AdmissionReview decoding and the per-shape decision memo.

The webhook decides on a pod reduced to `ADMISSION_FIELDS`; these tests hold that
reduction to deciding exactly as the whole pod would, for pods of every shape.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gibbous.webhook.app as app_module
from gibbous.core import keys
from gibbous.core.admission.mutation import ServerFeatures, plan_mutation
from gibbous.core.admission.validation import validate_pod
from gibbous.core.settings.config import Config
from gibbous.core.settings.loader import build_config
from gibbous.webhook.app import MEMO_ENTRY_BYTES, create_app
from gibbous.webhook.wire import ADMISSION_FIELDS, decode_review
from tests.factories import make_pod

FIXTURE = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures" / "admissionreview_pod_create.json"
    ).read_text()
)

CONFIGS = [
    build_config({}),
    build_config({"provisioningGate": True, "cloudProvider": "azure", "schedulerName": "gib"}),
    build_config(
        {
            "cloudProvider": "gcp",
            "nvidiaGPUTimeSlices": 4,
            "placeNodeSelector": True,
            "defaultInstanceOfferings": "spot,on-demand",
            "estimateOnlyNamespaces": "team-a",
            "managedNamespaces": "team-b",
        }
    ),
]


def body_for(pod: Any, *, namespace: Any = "team-a", operation: str = "CREATE") -> bytes:
    review = copy.deepcopy(FIXTURE)
    review["request"]["object"] = pod
    review["request"]["operation"] = operation
    if namespace is None:
        del review["request"]["namespace"]
    else:
        review["request"]["namespace"] = namespace
    return orjson.dumps(review)


quantities = st.sampled_from(["100m", "1", "2", "1.5", "4Gi", "512Mi", "0", "-1", "abc", 3, None])
resource_lists = st.dictionaries(
    st.sampled_from(["cpu", "memory", keys.NVIDIA_GPU, "ephemeral-storage", "example.com/fpga"]),
    quantities,
    max_size=4,
)
resources = st.fixed_dictionaries(
    {}, optional={"requests": resource_lists | st.none(), "limits": resource_lists}
)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["main", "side"]), "image": st.just("busybox")},
        optional={
            "resources": resources | st.just("junk"),
            "restartPolicy": st.sampled_from(["Always", "Never"]),
            "volumeMounts": st.just([{"name": "kube-api-access-x7k2p", "mountPath": "/var"}]),
        },
    ),
    max_size=3,
)
annotation_values = st.sampled_from(
    ["spot", "spot,on-demand", "on-demand", "cheap", "2", "x", "true", "t4,l4", ".*"]
)
annotation_maps = st.dictionaries(
    st.sampled_from(
        [
            keys.INSTANCE_OFFERINGS,
            keys.INSTANCE_MAX_GPUS,
            keys.INSTANCE_MAX_COST,
            keys.INSTANCE_GPU_SKUS,
            keys.INSTANCE_TYPE_REGEXP,
            keys.DO_NOT_EVICT,
            "other/annotation",
        ]
    ),
    annotation_values | st.integers(0, 3),
    max_size=3,
)
labels = st.dictionaries(
    st.sampled_from(["elotl-luna", keys.PLACEMENT, "app"]),
    st.sampled_from(["true", "false", "bin-pack", "bin-select", "web"]),
    max_size=3,
)
tolerations = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from([keys.SPOT_TAINT_KEY, "nvidia.com/gpu", ""])},
        optional={
            "operator": st.sampled_from(["Exists", "Equal"]),
            "value": st.just("spot"),
            "effect": st.sampled_from(["NoSchedule", "NoExecute"]),
        },
    ),
    max_size=2,
)
node_selector = st.dictionaries(
    st.sampled_from(
        [keys.CAPACITY_TYPE, keys.GKE_GPU_SHARING_STRATEGY, keys.GKE_MAX_SHARED_CLIENTS, "zone"]
    ),
    st.sampled_from(["spot", "on-demand", "time-sharing", "2", "a"]),
    max_size=2,
)
affinity = st.just(
    {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": keys.CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}
                        ]
                    }
                ]
            }
        }
    }
)
specs = st.fixed_dictionaries(
    {"containers": containers},
    optional={
        "initContainers": containers,
        "overhead": resource_lists,
        "tolerations": tolerations,
        "nodeSelector": node_selector,
        "affinity": affinity,
        "schedulingGates": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from([keys.PROVISIONING_GATE, keys.COST_ESTIMATE_GATE, "x"])}
            ),
            max_size=2,
        ),
        "schedulerName": st.sampled_from(["default-scheduler", "gib"]),
        "volumes": st.just([{"name": "kube-api-access-x7k2p", "projected": {"sources": []}}]),
        "nodeName": st.just("n1"),
    },
)
metadata_fields: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(max_size=5),
    "generateName": st.just("web-7d9c8b6f5d-"),
    "namespace": st.sampled_from(["team-a", "team-b", "default"]),
    "labels": labels | st.none(),
    "annotations": annotation_maps,
    "uid": st.uuids().map(str),
    "managedFields": st.just([{"manager": "kube-controller-manager", "fieldsV1": {"f:a": {}}}]),
    "ownerReferences": st.just([{"kind": "ReplicaSet", "name": "web-7d9c8b6f5d"}]),
}
metadatas = st.fixed_dictionaries({}, optional=metadata_fields)
pods = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.just("v1"),
        "kind": st.just("Pod"),
        "metadata": metadatas | st.none() | st.just("not an object"),
        "spec": specs | st.none(),
        "status": st.just({"phase": "Pending"}),
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    pod=pods,
    config=st.sampled_from(CONFIGS),
    namespace=st.sampled_from(["team-a", "team-b", None]),
    operation=st.sampled_from(["CREATE", "UPDATE"]),
)
def test_deciding_on_the_reduced_pod_equals_deciding_on_the_whole_pod(
    pod: dict[str, Any], config: Config, namespace: str | None, operation: str
) -> None:
    request = decode_review(body_for(pod, namespace=namespace, operation=operation))
    reduced = request.pod()
    assert reduced is not None
    whole_namespace = namespace or (
        pod.get("metadata", {}).get("namespace") if isinstance(pod.get("metadata"), dict) else None
    )
    assert request.namespace == (whole_namespace or "default")
    for features in (ServerFeatures(True), ServerFeatures(False)):
        assert plan_mutation(
            reduced,
            namespace=request.namespace,
            operation=operation,
            config=config,
            features=features,
        ) == plan_mutation(
            pod, namespace=request.namespace, operation=operation, config=config, features=features
        )
    assert validate_pod(reduced, namespace=request.namespace, config=config) == validate_pod(
        pod, namespace=request.namespace, config=config
    )


def test_pods_of_one_template_share_a_shape_that_leaves_out_what_admission_does_not_read() -> None:
    first = FIXTURE["request"]["object"]
    second = copy.deepcopy(first)
    second["metadata"]["uid"] = "another"
    second["metadata"]["managedFields"] = []
    second["spec"]["volumes"][0]["name"] = "kube-api-access-zzzzz"
    second["spec"]["containers"][0]["volumeMounts"][0]["name"] = "kube-api-access-zzzzz"
    one, two = decode_review(body_for(first)), decode_review(body_for(second))
    assert one.shape is not None and one.shape == two.shape
    reduced = one.pod()
    assert reduced is not None
    assert "managedFields" not in reduced["metadata"] and "volumes" not in reduced["spec"]
    assert "status" not in reduced
    other_workload = copy.deepcopy(first)
    other_workload["metadata"]["labels"]["app"] = "another-app"
    assert decode_review(body_for(other_workload)).shape != one.shape


def test_shapes_the_typed_decoder_refuses_are_decoded_whole() -> None:
    pod = {"metadata": "not an object", "spec": {"containers": "nor a list"}}
    request = decode_review(body_for(pod))
    assert request.shape is None and request.document == pod
    assert request.has_object and request.pod() == pod


def test_a_review_without_an_object_has_none() -> None:
    review = copy.deepcopy(FIXTURE)
    del review["request"]["object"]
    request = decode_review(orjson.dumps(review))
    assert not request.has_object and request.pod() is None
    assert request.namespace == FIXTURE["request"]["namespace"]
    assert request.is_pod


class CountingPlanner:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return plan_mutation(*args, **kwargs)


def mutate(app: Any, body: bytes) -> dict[str, Any]:
    status, reply, _ = app.handlers["/mutate"](body)
    assert status == 200
    response: dict[str, Any] = orjson.loads(reply)["response"]
    return response


def test_replicas_of_one_workload_are_decided_once_and_answered_each_with_its_uid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = CountingPlanner()
    monkeypatch.setattr(app_module, "plan_mutation", counting)
    app = create_app(build_config({"schedulerName": "gib"}))
    replies = []
    for index in range(5):
        review = copy.deepcopy(FIXTURE)
        review["request"]["uid"] = f"uid-{index}"
        review["request"]["object"]["metadata"]["uid"] = f"pod-{index}"
        replies.append(mutate(app, orjson.dumps(review)))
    assert counting.calls == 1
    assert [r["uid"] for r in replies] == [f"uid-{i}" for i in range(5)]
    assert all(r["patch"] == replies[0]["patch"] and r["allowed"] for r in replies)
    # Another namespace or operation is another decision.
    review = copy.deepcopy(FIXTURE)
    review["request"]["namespace"] = "elsewhere"
    mutate(app, orjson.dumps(review))
    assert counting.calls == 2


def test_large_shapes_are_decided_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingPlanner()
    monkeypatch.setattr(app_module, "plan_mutation", counting)
    app = create_app(build_config({}))
    pod = make_pod(annotations={"big": "x" * MEMO_ENTRY_BYTES})
    body = body_for(pod)
    first, second = mutate(app, body), mutate(app, body)
    assert counting.calls == 2
    assert first == second


GATED = build_config({"provisioningGate": True, "schedulerName": "gib"})
GKE = build_config({"cloudProvider": "gcp", "nvidiaGPUTimeSlices": 4, "placeNodeSelector": True})
TEAM_B = build_config({"managedNamespaces": "team-b"})


def _spot_pod() -> dict[str, Any]:
    return make_pod(annotations={keys.INSTANCE_OFFERINGS: "spot"})


def _gke_pod() -> dict[str, Any]:
    pod = make_pod(gpus=2, node_selector={keys.GKE_GPU_SHARING_STRATEGY: "time-sharing"})
    pod["spec"]["nodeSelector"][keys.GKE_MAX_SHARED_CLIENTS] = "2"
    return pod


def _with_sidecar() -> dict[str, Any]:
    pod = make_pod()
    pod["spec"]["initContainers"] = [
        {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}
    ]
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    return pod


def _with_affinity() -> dict[str, Any]:
    pod = _spot_pod()
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": keys.CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}
                        ]
                    }
                ]
            }
        }
    }
    return pod


def _gated() -> dict[str, Any]:
    pod = make_pod(cpu="4")
    pod["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    return pod


def _overhead() -> dict[str, Any]:
    pod = make_pod(cpu="1")
    pod["spec"]["overhead"] = {"cpu": "1"}
    return pod


def _pod_level_cpu() -> dict[str, Any]:
    pod = make_pod(cpu="1")
    pod["spec"]["resources"] = {"requests": {"cpu": "4"}}  # bin-select only at pod level
    return pod


def _scheduled_by_gib() -> dict[str, Any]:
    pod = make_pod()
    pod["spec"]["schedulerName"] = "gib"
    return pod


def _unlabelled_in_team_b() -> dict[str, Any]:
    return make_pod(managed=False, namespace="team-b")


def _gke_init() -> dict[str, Any]:
    pod = _gke_pod()
    pod["spec"]["initContainers"] = [
        {"name": "warmup", "resources": {"limits": {keys.NVIDIA_GPU: "2"}}}
    ]
    pod["spec"]["containers"][0]["resources"] = {"limits": {keys.NVIDIA_GPU: "1"}}
    return pod


def _tolerating_spot() -> dict[str, Any]:
    pod = _spot_pod()
    pod["spec"]["tolerations"] = [{"key": keys.SPOT_TAINT_KEY, "operator": "Exists"}]
    return pod


# (field of ADMISSION_FIELDS, config, a pod whose decisions that field changes, the path
# to remove it). Random pods rarely hit these combinations; each case proves the
# reduction keeps its field.
SENSITIVE = [
    ("metadata.namespace", TEAM_B, _unlabelled_in_team_b, ("metadata", "namespace")),
    ("metadata.labels", GATED, make_pod, ("metadata", "labels")),
    ("metadata.annotations", GATED, _spot_pod, ("metadata", "annotations")),
    ("spec.containers[].name", GKE, _gke_pod, ("spec", "containers", 0, "name")),
    (
        "spec.containers[].resources",
        GATED,
        lambda: make_pod(cpu="4"),
        ("spec", "containers", 0, "resources"),
    ),
    ("spec.initContainers[].name", GKE, _gke_init, ("spec", "initContainers", 0, "name")),
    (
        "spec.initContainers[].resources",
        GATED,
        _with_sidecar,
        ("spec", "initContainers", 0, "resources"),
    ),
    (
        "spec.initContainers[].restartPolicy",
        GATED,
        _with_sidecar,
        ("spec", "initContainers", 0, "restartPolicy"),
    ),
    ("spec.overhead", GATED, _overhead, ("spec", "overhead")),
    ("spec.resources", GATED, _pod_level_cpu, ("spec", "resources")),
    ("spec.tolerations", GATED, _tolerating_spot, ("spec", "tolerations")),
    ("spec.nodeSelector", GKE, _gke_pod, ("spec", "nodeSelector")),
    ("spec.affinity", GATED, _with_affinity, ("spec", "affinity")),
    ("spec.schedulingGates", GATED, _gated, ("spec", "schedulingGates")),
    ("spec.schedulerName", GATED, _scheduled_by_gib, ("spec", "schedulerName")),
]


def decisions(pod: dict[str, Any], config: Config, namespace: str) -> tuple[Any, ...]:
    return (
        plan_mutation(
            pod,
            namespace=namespace,
            operation="CREATE",
            config=config,
            features=ServerFeatures(True),
        ),
        validate_pod(pod, namespace=namespace, config=config),
    )


def without(pod: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    parent: Any = out
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return out


def test_every_admission_field_is_kept_and_matters() -> None:
    assert sorted(field for field, *_ in SENSITIVE) == sorted(ADMISSION_FIELDS)
    for field, config, make, path in SENSITIVE:
        pod = make()
        request = decode_review(body_for(pod, namespace=None))
        reduced = request.pod()
        assert reduced is not None
        whole = decisions(pod, config, request.namespace)
        assert decisions(reduced, config, request.namespace) == whole, field
        stripped = decode_review(body_for(without(pod, path), namespace=None))
        assert decisions(without(pod, path), config, stripped.namespace) != whole, (
            f"{field} does not change any decision in its case"
        )

"""Mutation planning: patches applied with jsonpatch, the way kube-apiserver applies them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gibbous.core import keys
from gibbous.core.admission.mutation import Mutation, ServerFeatures, plan_mutation, plan_release
from gibbous.core.settings.config import Config
from tests.factories import config, make_pod

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "admissionreview_pod_create.json").read_text()
)
GATES = ServerFeatures(scheduling_gates=True)
NO_GATES = ServerFeatures(scheduling_gates=False)


def mutate(
    pod: dict[str, Any],
    cfg: Config,
    *,
    namespace: str = "default",
    features: ServerFeatures = GATES,
    operation: str = "CREATE",
) -> tuple[Mutation, dict[str, Any]]:
    mutation = plan_mutation(
        pod, namespace=namespace, operation=operation, config=cfg, features=features
    )
    patched = (
        jsonpatch.JsonPatch(list(mutation.operations)).apply(copy.deepcopy(pod))
        if mutation.operations
        else pod
    )
    return mutation, patched


def test_upstream_fixture_gets_placement_label_only_by_default() -> None:
    pod = FIXTURE["request"]["object"]
    mutation, patched = mutate(pod, config(), namespace="ml-team")
    assert patched["metadata"]["labels"][keys.PLACEMENT] == "bin-select"  # 2 CPU, 12Gi, 1 GPU
    assert mutation.operations == (
        {"op": "add", "path": "/metadata/labels/gibbous.dev~1placement", "value": "bin-select"},
    )


def test_unmanaged_pods_are_untouched() -> None:
    mutation, _ = mutate(make_pod(managed=False), config(provisioningGate=True))
    assert not mutation.managed and mutation.operations == ()


def test_namespace_opt_in_adds_the_label_and_creates_missing_labels_map() -> None:
    pod = make_pod(managed=False)
    del pod["metadata"]["labels"]
    mutation, patched = mutate(pod, config(managedNamespaces=["ml"]), namespace="ml")
    assert patched["metadata"]["labels"] == {"elotl-luna": "true", keys.PLACEMENT: "bin-pack"}
    assert mutation.operations[0]["path"] == "/metadata/labels"


def test_provisioning_gate_on_bin_select_pods_only_when_supported() -> None:
    cfg = config(provisioningGate=True)
    _, big = mutate(make_pod(cpu="4"), cfg)
    assert big["spec"]["schedulingGates"] == [{"name": keys.PROVISIONING_GATE}]
    _, small = mutate(make_pod(cpu="100m"), cfg)
    assert "schedulingGates" not in small["spec"]
    mutation, old_server = mutate(make_pod(cpu="4"), cfg, features=NO_GATES)
    assert "schedulingGates" not in old_server["spec"]
    assert any("no scheduling gates" in w for w in mutation.warnings)


def test_no_gate_is_ever_added_on_update() -> None:
    mutation, _ = mutate(make_pod(cpu="4"), config(provisioningGate=True), operation="UPDATE")
    assert mutation.operations == ()


def test_estimate_only_namespace_gets_lunas_gate_appended() -> None:
    pod = make_pod(cpu="4")
    pod["spec"]["schedulingGates"] = [{"name": "example.com/other"}]
    _, patched = mutate(pod, config(estimateOnlyNamespaces=["cost"]), namespace="cost")
    assert patched["spec"]["schedulingGates"] == [
        {"name": "example.com/other"},
        {"name": "nodecostestimate"},
    ]


def test_gate_is_removed_when_reinvocation_finds_a_bin_pack_pod() -> None:
    pod = make_pod(cpu="100m")
    pod["spec"]["schedulingGates"] = [{"name": "x"}, {"name": keys.PROVISIONING_GATE}]
    _, patched = mutate(pod, config(provisioningGate=True))
    assert patched["spec"]["schedulingGates"] == [{"name": "x"}]


def test_spot_tolerations_follow_the_offerings_without_duplicates() -> None:
    cfg = config(cloudProvider="azure")
    spot = make_pod(
        annotations={keys.INSTANCE_OFFERINGS: "spot,on-demand"},
        tolerations=[
            {
                "key": keys.AKS_SCALESET_PRIORITY,
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        ],
    )
    _, patched = mutate(spot, cfg)
    assert patched["spec"]["tolerations"] == [
        {
            "key": keys.AKS_SCALESET_PRIORITY,
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        },
        {"key": keys.SPOT_TAINT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    ]
    _, on_demand = mutate(make_pod(annotations={keys.INSTANCE_OFFERINGS: "on-demand"}), cfg)
    assert "tolerations" not in on_demand["spec"]
    # bin-pack pods follow binPackingNodePricing
    _, packed = mutate(make_pod(), config(binPackingNodePricing="spot,on-demand"))
    assert packed["spec"]["tolerations"] == [
        {"key": keys.SPOT_TAINT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}
    ]


def test_a_pod_selecting_gke_spot_tolerates_the_spot_nodes_it_will_get() -> None:
    # GKE's Spot VMs page: pods select spot nodes with cloud.google.com/gke-spot=true; the
    # node Gibbous buys for it is spot, tainted with its spot taint, so the pod needs the
    # toleration though defaultInstanceOfferings is on-demand.
    pod = make_pod(cpu="3", node_selector={"cloud.google.com/gke-spot": "true"})
    _, patched = mutate(pod, config(cloudProvider="gcp"))
    spot_toleration = {
        "key": keys.SPOT_TAINT_KEY,
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }
    assert spot_toleration in patched["spec"]["tolerations"]
    _, plain = mutate(make_pod(cpu="3"), config(cloudProvider="gcp"))
    assert "tolerations" not in plain["spec"]


def test_gke_time_slice_selectors_for_gpu_pods() -> None:
    cfg = config(
        cloudProvider="gcp",
        nvidiaGPUTimeSlices=2,
        placeNodeSelector=True,
        binSelectPodGPUThreshold=2,
    )
    _, patched = mutate(make_pod(cpu="1", memory="2G", gpus=1), cfg)
    assert patched["spec"]["nodeSelector"] == {
        keys.GKE_GPU_SHARING_STRATEGY: "time-sharing",
        keys.GKE_MAX_SHARED_CLIENTS: "2",
    }
    _, cpu_only = mutate(make_pod(), cfg)
    assert "nodeSelector" not in cpu_only["spec"]
    _, not_gke = mutate(make_pod(gpus=1), config(nvidiaGPUTimeSlices=2, placeNodeSelector=True))
    assert "nodeSelector" not in not_gke["spec"]


def test_scheduler_name_is_set_when_configured() -> None:
    pod = make_pod()
    pod["spec"]["schedulerName"] = "default-scheduler"
    _, patched = mutate(pod, config(schedulerName="gibbous-scheduler"))
    assert patched["spec"]["schedulerName"] == "gibbous-scheduler"


@pytest.mark.parametrize("named", [None, "", "default-scheduler"])
def test_pods_for_the_default_scheduler_are_routed(named: str | None) -> None:
    pod = make_pod()
    if named is not None:
        pod["spec"]["schedulerName"] = named
    mutation, patched = mutate(pod, config(schedulerName="gibbous-scheduler"))
    assert patched["spec"]["schedulerName"] == "gibbous-scheduler"
    assert not [w for w in mutation.warnings if "schedulerName" in w]


@pytest.mark.parametrize("named", ["kai-scheduler", "volcano"])
def test_a_pod_naming_another_scheduler_keeps_it_with_a_warning(named: str) -> None:
    # KAI's setup names its scheduler on every pod; routing it elsewhere bypasses its queues.
    pod = make_pod(cpu="4")
    pod["spec"]["schedulerName"] = named
    mutation, patched = mutate(pod, config(schedulerName="gibbous-scheduler"))
    assert patched["spec"]["schedulerName"] == named
    assert not [op for op in mutation.operations if op["path"] == "/spec/schedulerName"]
    assert [w for w in mutation.warnings if named in w and "schedulerName" in w]
    assert patched["metadata"]["labels"][keys.PLACEMENT] == "bin-select"  # still managed


@pytest.mark.parametrize("value", ["true", "True"])
def test_lunas_ignore_annotation_leaves_a_labelled_pod_alone(value: str) -> None:
    # docs.elotl.co/luna/configuration: "To prevent Luna from matching a given pod annotate
    # it with pod.elotl.co/ignore: true."
    pod = make_pod(cpu="4", annotations={"pod.elotl.co/ignore": value})
    mutation, _ = mutate(pod, config(provisioningGate=True, schedulerName="gibbous"))
    assert not mutation.managed and mutation.operations == ()
    opted_in = make_pod(managed=False, annotations={"pod.elotl.co/ignore": "true"})
    assert not mutate(opted_in, config(managedNamespaces=["*"]))[0].managed


def test_ignore_false_keeps_the_pod_managed() -> None:
    mutation, _ = mutate(make_pod(annotations={"pod.elotl.co/ignore": "false"}), config())
    assert mutation.managed and mutation.operations


def test_unknown_luna_annotations_are_named_in_a_warning() -> None:
    known = {
        "node.elotl.co/instance-offerings": "spot",
        "node.elotl.co/instance-max-cost": "4.75",
        "node.elotl.co/instance-type-regexp": "^g5.xlarge$",
        "node.elotl.co/instance-gpu-skus": "T4",
        "node.elotl.co/instance-max-gpus": "2",
        "node.elotl.co/instance-family-inclusions": "c6g",
        "node.elotl.co/instance-family-exclusions": "t3",
        "pod.elotl.co/do-not-evict": "true",
        "pod.elotl.co/ignore": "false",
    }
    quiet, _ = mutate(make_pod(annotations=known), config())
    assert not [w for w in quiet.warnings if "not known" in w]
    odd = {
        "node.elotl.co/instance-gpu-sku": "T4",  # a typo of instance-gpu-skus
        "pod.elotl.co/dont-evict": "true",
        "example.com/other": "x",  # not Luna's: not ours to judge
    }
    loud, _ = mutate(make_pod(annotations=odd), config())
    (warning,) = [w for w in loud.warnings if "not known" in w]
    assert "node.elotl.co/instance-gpu-sku" in warning and "pod.elotl.co/dont-evict" in warning
    assert "example.com" not in warning


def test_bad_requests_still_get_the_label_and_a_warning() -> None:
    pod = make_pod(cpu="lots")
    mutation, patched = mutate(pod, config())
    assert keys.PLACEMENT not in patched["metadata"]["labels"]
    assert any("not classified" in w for w in mutation.warnings)


def test_keys_with_slashes_are_escaped() -> None:
    # (`~`, the other character JSON Pointer escapes, is refused in a label key by `labels`.)
    pod = make_pod(managed=False)
    mutation, patched = mutate(
        pod, config(labels="team.example.com/ml=yes", managedNamespaces=["default"])
    )
    assert patched["metadata"]["labels"]["team.example.com/ml"] == "yes"
    assert "/metadata/labels/team.example.com~1ml" in [op["path"] for op in mutation.operations]


def test_vpa_reinvocation_moves_the_placement_label() -> None:
    cfg = config(provisioningGate=True)
    _, first = mutate(make_pod(cpu="100m"), cfg)
    assert first["metadata"]["labels"][keys.PLACEMENT] == "bin-pack"
    grown = copy.deepcopy(first)
    grown["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2406m"  # P09 Exp. 4
    _, again = mutate(grown, cfg)
    assert again["metadata"]["labels"][keys.PLACEMENT] == "bin-select"
    assert again["spec"]["schedulingGates"] == [{"name": keys.PROVISIONING_GATE}]


pods = st.builds(
    make_pod,
    cpu=st.sampled_from(["100m", "1", "2", "8"]),
    memory=st.sampled_from(["128Mi", "8Gi"]),
    gpus=st.sampled_from([0, 1, 2]),
    annotations=st.sampled_from(
        [{}, {keys.INSTANCE_OFFERINGS: "spot"}, {keys.INSTANCE_OFFERINGS: "spot,on-demand"}]
    ),
    managed=st.booleans(),
)
configs = st.sampled_from(
    [
        config(),
        config(provisioningGate=True, cloudProvider="azure"),
        config(
            cloudProvider="gcp",
            nvidiaGPUTimeSlices=4,
            placeNodeSelector=True,
            schedulerName="gibbous",
        ),
        config(
            managedNamespaces=["default"],
            estimateOnlyNamespaces=["default"],
            binPackingNodePricing="spot",
        ),
    ]
)


@settings(max_examples=150, deadline=None)
@given(pods, configs)
def test_mutation_is_idempotent(pod: dict[str, Any], cfg: Config) -> None:
    _, once = mutate(pod, cfg)
    second, _ = mutate(once, cfg)
    assert second.operations == ()


@pytest.mark.parametrize("namespace", ["default", "ml"])
def test_patch_never_touches_unrelated_fields(namespace: str) -> None:
    pod = FIXTURE["request"]["object"]
    _, patched = mutate(
        pod, config(provisioningGate=True, cloudProvider="azure"), namespace=namespace
    )
    for field in ("containers", "volumes", "serviceAccountName", "restartPolicy"):
        assert patched["spec"][field] == pod["spec"][field]
    assert patched["metadata"]["managedFields"] == pod["metadata"]["managedFields"]


def test_release_pins_a_gated_pod_to_its_node_and_lifts_only_our_gate() -> None:
    pod = make_pod("g")
    pod["spec"]["schedulingGates"] = [{"name": keys.PROVISIONING_GATE}]
    released = jsonpatch.apply_patch(pod, plan_release(pod, "node-1"))
    assert released["spec"]["nodeSelector"] == {keys.HOSTNAME: "node-1"}
    assert "schedulingGates" not in released["spec"]
    other = make_pod("o", node_selector={"team": "a"})
    other["spec"]["schedulingGates"] = [{"name": "x.io/hold"}, {"name": keys.PROVISIONING_GATE}]
    released = jsonpatch.apply_patch(other, plan_release(other, None))
    assert released["spec"]["nodeSelector"] == {"team": "a"}
    assert released["spec"]["schedulingGates"] == [{"name": "x.io/hold"}]
    # Pinned beside the pod's own selector: the key's "/" is "~1" in the JSON pointer (RFC
    # 6901), so the label is added under nodeSelector, not as a path into it.
    pinned = jsonpatch.apply_patch(other, plan_release(other, "node-2"))
    assert pinned["spec"]["nodeSelector"] == {"team": "a", keys.HOSTNAME: "node-2"}
    assert pinned["spec"]["schedulingGates"] == [{"name": "x.io/hold"}]
    assert plan_release(make_pod("plain"), "node-1") == []
    # Someone changed the gates in between: the `test` makes the patch fail, not clobber.
    ops = plan_release(pod, "node-1")
    pod["spec"]["schedulingGates"].append({"name": "late.io/gate"})
    try:
        jsonpatch.apply_patch(pod, ops)
    except jsonpatch.JsonPatchTestFailed:
        pass
    else:
        raise AssertionError("the test operation should have failed")


def test_a_pod_with_the_second_of_lunas_listed_labels_is_managed_and_mutated_once() -> None:
    cfg = config(labels="key1=value1,key2=value2")
    pod = make_pod(managed=False, labels={"key2": "value2"})
    mutation, patched = mutate(pod, cfg)
    assert mutation.managed
    assert patched["metadata"]["labels"] == {"key2": "value2", keys.PLACEMENT: "bin-pack"}
    # The chart calls the webhook once per label key: the second call changes nothing.
    assert mutate(patched, cfg)[0].operations == ()


def test_a_pod_with_one_of_lunas_pod_annotations_is_managed() -> None:
    cfg = config(podAnnotations="team.example.com/autoscale=luna")
    pod = make_pod(managed=False, annotations={"team.example.com/autoscale": "luna"})
    mutation, patched = mutate(pod, cfg)
    assert mutation.managed and patched["metadata"]["labels"][keys.PLACEMENT] == "bin-pack"
    assert not mutate(pod, config())[0].managed

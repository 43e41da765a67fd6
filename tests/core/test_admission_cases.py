"""Admission rules the mutation report (docs/mutation.md) showed no test held. Expected
values come from the rules' sources, written here: RFC 6901 escaping, the Taint and
Toleration API, the providers' capacity labels (Karpenter, EKS, GKE Spot VMs, AKS spot
pools), GKE's one-GPU-per-container rule for time-shared GPUs, and hand arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from gibbous.core.admission.mutation import (
    Mutation,
    ServerFeatures,
    escape,
    parse_taint,
    plan_mutation,
    plan_release,
    toleration_for,
)
from gibbous.core.admission.validation import denial_message, validate_pod, validate_update
from tests.factories import config, make_pod

OFFERINGS = "node.elotl.co/instance-offerings"
MAX_GPUS = "node.elotl.co/instance-max-gpus"
MAX_COST = "node.elotl.co/instance-max-cost"
TIME_SHARING = "cloud.google.com/gke-gpu-sharing-strategy"


def test_rfc_6901_escapes_tilde_before_slash() -> None:
    assert escape("a~b/c") == "a~0b~1c"
    assert escape("~1") == "~01"  # a literal "~1" must not read back as "/"
    assert escape("plain") == "plain"


def test_taints_as_kubectl_writes_them() -> None:
    assert parse_taint("gibbous.dev/capacity-type=spot:NoSchedule") == {
        "key": "gibbous.dev/capacity-type",
        "value": "spot",
        "effect": "NoSchedule",
    }
    assert parse_taint("dedicated:NoExecute") == {"key": "dedicated", "effect": "NoExecute"}
    assert parse_taint("k=:NoSchedule") == {"key": "k", "value": "", "effect": "NoSchedule"}


def test_a_toleration_matches_its_taint_by_value_or_by_existence() -> None:
    assert toleration_for({"key": "k", "value": "v", "effect": "NoSchedule"}) == {
        "key": "k",
        "operator": "Equal",
        "value": "v",
        "effect": "NoSchedule",
    }
    assert toleration_for({"key": "k", "effect": "NoExecute"}) == {
        "key": "k",
        "operator": "Exists",
        "effect": "NoExecute",
    }


def test_denials_list_ten_problems_then_count_the_rest() -> None:
    assert denial_message(["a"]) == "gibbous: a"
    ten = [f"p{i}" for i in range(10)]
    assert denial_message(ten) == "gibbous: " + "; ".join(ten)
    assert denial_message([*ten, "x"]) == "gibbous: " + "; ".join(ten) + "; and 1 more problem"
    assert (
        denial_message([*ten, "x", "y"]) == "gibbous: " + "; ".join(ten) + "; and 2 more problems"
    )


def _problems(pod: dict[str, Any], **values: object) -> list[str]:
    return validate_pod(pod, namespace="default", config=config(**values))


@pytest.mark.parametrize(
    ("offerings", "selector"),
    [
        ("spot", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}),
        ("spot", {"gibbous.dev/capacity-type": "on-demand"}),
        ("on-demand", {"cloud.google.com/gke-spot": "true"}),
        ("on-demand", {"kubernetes.azure.com/scalesetpriority": "spot"}),
        ("on-demand", {"karpenter.sh/capacity-type": "spot"}),
    ],
)
def test_offerings_contradicting_a_capacity_label_are_refused(
    offerings: str, selector: dict[str, str]
) -> None:
    problems = _problems(make_pod(annotations={OFFERINGS: offerings}, node_selector=selector))
    assert problems == [
        f'annotation {OFFERINGS}="{offerings}" contradicts the pod\'s node selector or '
        f"required node affinity, which admits no {offerings} node; remove one of them"
    ]


@pytest.mark.parametrize(
    ("offerings", "selector"),
    [
        ("spot", {"cloud.google.com/gke-spot": "true"}),
        ("spot", {"kubernetes.azure.com/scalesetpriority": "spot"}),
        ("spot", {"eks.amazonaws.com/capacityType": "SPOT"}),
        ("on-demand", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}),
    ],
)
def test_offerings_agreeing_with_a_capacity_label_pass(
    offerings: str, selector: dict[str, str]
) -> None:
    assert _problems(make_pod(annotations={OFFERINGS: offerings}, node_selector=selector)) == []


def test_two_offerings_are_named_sorted_when_both_contradict() -> None:
    pod = make_pod(
        annotations={OFFERINGS: "spot,on-demand"},
        node_selector={"karpenter.sh/capacity-type": "reserved"},
    )
    assert _problems(pod) == [
        f'annotation {OFFERINGS}="on-demand,spot" contradicts the pod\'s node selector or '
        "required node affinity, which admits no on-demand,spot node; remove one of them"
    ]


def test_max_gpus_counts_physical_gpus_under_time_slicing() -> None:
    # 3 GPUs requested, 2 slices per physical GPU: ceil(3 / 2) = 2 physical GPUs.
    pod = make_pod(gpus=3, annotations={MAX_GPUS: "1"})
    assert _problems(pod, nvidiaGPUTimeSlices=2) == [
        f"annotation {MAX_GPUS}=1 is below the 3 nvidia.com/gpu the pod requests"
    ]
    assert _problems(make_pod(gpus=3, annotations={MAX_GPUS: "2"}), nvidiaGPUTimeSlices=2) == []
    assert _problems(make_pod(gpus=2, annotations={MAX_GPUS: "2"})) == []
    assert len(_problems(make_pod(gpus=3, annotations={MAX_GPUS: "2"}))) == 1


def _time_shared(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None) -> Any:
    pod = make_pod(node_selector={TIME_SHARING: "time-sharing"})
    pod["spec"]["containers"] = list(containers)
    if init is not None:
        pod["spec"]["initContainers"] = init
    return pod


def _gpus(name: str, section: str, count: object) -> dict[str, Any]:
    return {"name": name, "resources": {section: {"nvidia.com/gpu": count}}}


def _too_many(name: str, count: str) -> str:
    return (
        f'container "{name}" asks for "{count}" nvidia.com/gpu on a GKE time-shared GPU node '
        f"({TIME_SHARING}=time-sharing); time-shared GPUs allow at most 1 per container"
    )


def test_gke_time_shared_gpus_allow_one_per_container() -> None:
    # GKE: a container on a time-shared GPU node may request at most one GPU.
    assert _problems(_time_shared(_gpus("main", "limits", "1"))) == []
    assert _problems(_time_shared(_gpus("main", "requests", "0"))) == []
    assert _problems(_time_shared(_gpus("main", "limits", "2"))) == [_too_many("main", "2")]
    assert _problems(_time_shared(_gpus("main", "requests", "2"))) == [_too_many("main", "2")]
    both: dict[str, Any] = {
        "name": "b",
        "resources": {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}},
    }
    assert _problems(_time_shared(both)) == [_too_many("b", "2")]  # once per container
    init = _time_shared(_gpus("main", "limits", "1"), init=[_gpus("setup", "limits", "4")])
    assert _problems(init) == [_too_many("setup", "4")]
    two = _time_shared(_gpus("a", "limits", "2"), _gpus("b", "limits", "3"))
    assert _problems(two) == [_too_many("a", "2"), _too_many("b", "3")]


def test_time_sharing_rule_needs_the_time_sharing_selector() -> None:
    pod = _time_shared(_gpus("main", "limits", "2"))
    pod["spec"]["nodeSelector"] = {TIME_SHARING: "mps"}
    assert _problems(pod) == []


def test_an_update_is_judged_only_on_the_annotations_it_changes() -> None:
    old = {MAX_COST: "cheap", OFFERINGS: "spot"}
    untouched = make_pod(annotations=dict(old))
    assert validate_update(untouched, old, namespace="default", config=config()) == []
    changed = make_pod(annotations={MAX_COST: "cheap", OFFERINGS: "moon"})
    problems = validate_update(changed, old, namespace="default", config=config())
    assert len(problems) == 1 and OFFERINGS in problems[0] and MAX_COST not in problems[0]
    now_bad = make_pod(annotations={MAX_COST: "dear", OFFERINGS: "spot"})
    problems = validate_update(now_bad, old, namespace="default", config=config())
    assert len(problems) == 1 and MAX_COST in problems[0] and '"dear"' in problems[0]


GATES = ServerFeatures(scheduling_gates=True)


def _plan(pod: Any, cfg: Any, features: ServerFeatures = GATES, ns: str = "default") -> Any:
    return plan_mutation(pod, namespace=ns, operation="CREATE", config=cfg, features=features)


def test_no_gate_warning_when_the_gate_is_off() -> None:
    off = _plan(make_pod(), config(provisioningGate=False), ServerFeatures(scheduling_gates=False))
    assert off.warnings == ()
    on = _plan(make_pod(), config(provisioningGate=True), ServerFeatures(scheduling_gates=False))
    assert on.warnings == (
        "gibbous: provisioningGate is on but this API server has no scheduling gates; not gated",
    )


def test_every_namespace_is_managed_under_star() -> None:
    pod = make_pod(managed=False)
    result = _plan(pod, config(managedNamespaces=["*"]), ns="anything")
    assert result.managed
    assert {
        "op": "add",
        "path": "/metadata/labels/elotl-luna",
        "value": "true",
    } in result.operations
    assert not _plan(pod, config(managedNamespaces=["team-a"]), ns="anything").managed


def test_an_object_without_spec_is_left_alone_with_a_warning() -> None:
    result = _plan({"metadata": {"labels": {"elotl-luna": "true"}}}, config())
    assert result == Mutation(
        True, (), ("gibbous: the object has no pod metadata or spec; unchanged",)
    )


def test_a_pods_own_time_sharing_selector_is_kept_with_a_warning() -> None:
    cfg = config(cloudProvider="gcp", nvidiaGPUTimeSlices=2, placeNodeSelector=True)
    clients = "cloud.google.com/gke-max-shared-clients-per-gpu"
    one = make_pod(gpus=1, node_selector={clients: "4"})
    result = _plan(one, cfg)
    assert result.warnings == (
        f"gibbous: nodeSelector {clients} differs from nvidiaGPUTimeSlices=2; left as the pod has it",
    )
    assert {
        "op": "add",
        "path": f"/spec/nodeSelector/{TIME_SHARING.replace('/', '~1')}",
        "value": "time-sharing",
    } in result.operations
    both = make_pod(gpus=1, node_selector={clients: "4", TIME_SHARING: "mps"})
    assert _plan(both, cfg).warnings == (
        f"gibbous: nodeSelector {TIME_SHARING}, {clients} differs from nvidiaGPUTimeSlices=2; "
        "left as the pod has it",
    )


def test_release_tests_the_gate_list_as_it_was_even_when_malformed() -> None:
    pod = make_pod()
    pod["spec"]["schedulingGates"] = [{"name": "gibbous.dev/provisioning"}, "junk"]
    operations = plan_release(pod, None)
    assert operations == [
        {
            "op": "test",
            "path": "/spec/schedulingGates",
            "value": [{"name": "gibbous.dev/provisioning"}, "junk"],
        },
        {"op": "replace", "path": "/spec/schedulingGates", "value": ["junk"]},
    ]


def test_an_update_in_a_managed_namespace_is_judged_there() -> None:
    # Managed by its namespace (no label): the update is judged as the namespace's pod.
    pod = make_pod(managed=False, annotations={OFFERINGS: "moon"})
    cfg = config(managedNamespaces=["team-a"])
    problems = validate_update(pod, {}, namespace="team-a", config=cfg)
    assert len(problems) == 1 and OFFERINGS in problems[0]
    assert validate_update(pod, {}, namespace="team-b", config=cfg) == []

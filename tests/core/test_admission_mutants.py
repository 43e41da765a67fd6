"""Admission rules the full mutation run of issue 37 (docs/mutation.md) showed no test held.

Expected values come from the rules' sources, written here: GKE's one-GPU-per-container rule
for time-shared GPUs (cloud.google.com/gke-gpu-sharing-strategy=time-sharing), Luna's
annotations, and the webhook's documented warnings."""

from __future__ import annotations

from typing import Any

from gibbous.core.admission.mutation import ServerFeatures, plan_mutation, plan_release
from gibbous.core.admission.validation import validate_pod
from gibbous.core.choice.classify import Placement
from tests.factories import config, make_pod

TIME_SHARING = "cloud.google.com/gke-gpu-sharing-strategy"


def too_many(name: str, count: str) -> str:
    return (
        f'container {name} asks for "{count}" nvidia.com/gpu on a GKE time-shared GPU node '
        f"({TIME_SHARING}=time-sharing); time-shared GPUs allow at most 1 per container"
    )


def time_shared(*containers: dict[str, Any]) -> dict[str, Any]:
    pod = make_pod(node_selector={TIME_SHARING: "time-sharing"})
    pod["spec"]["containers"] = list(containers)
    return pod


def problems(pod: dict[str, Any], **values: object) -> list[str]:
    return validate_pod(pod, namespace="default", config=config(**values))


def test_time_shared_gpu_rule_reads_every_container() -> None:
    # a container without resources, then one asking for 2: the second is named
    pod = time_shared(
        {"name": "sidecar"},
        {"name": "main", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
    )
    assert problems(pod) == [too_many('"main"', "2")]


def test_time_shared_gpu_rule_names_an_unnamed_container_as_a_question_mark() -> None:
    pod = time_shared({"resources": {"limits": {"nvidia.com/gpu": "3"}}})
    assert too_many('"?"', "3") in problems(pod)


def test_resources_that_are_not_a_map_are_a_structure_problem_not_a_crash() -> None:
    pod = time_shared({"name": "main", "resources": "lots"})
    assert problems(pod) == [
        "spec.containers[0].resources: expected an object (ResourceRequirements), got a string"
    ]


def test_max_gpus_with_an_unreadable_quantity_reports_the_quantity() -> None:
    pod = make_pod(cpu="lots", annotations={"node.elotl.co/instance-max-gpus": "1"})
    (problem,) = problems(pod)
    assert problem.startswith("spec.containers[0].resources.requests.cpu")


def test_unknown_luna_annotations_are_named_in_a_warning() -> None:
    pod = make_pod(annotations={"node.elotl.co/instance-colour": "blue"})
    mutation = plan_mutation(
        pod, namespace="default", operation="CREATE", config=config(), features=ServerFeatures()
    )
    assert (
        "gibbous: annotation(s) node.elotl.co/instance-colour not known to Gibbous; ignored "
        "(docs/decisions.md lists the Luna annotations it acts on)"
    ) in mutation.warnings


def test_the_mutation_says_the_pods_placement() -> None:
    # Luna: a pod requesting at least binSelectPodCpuThreshold (2 CPUs) gets its own node
    for cpu, placement in (("100m", Placement.BIN_PACK), ("3", Placement.BIN_SELECT)):
        mutation = plan_mutation(
            make_pod(cpu=cpu),
            namespace="default",
            operation="CREATE",
            config=config(),
            features=ServerFeatures(),
        )
        assert mutation.managed is True and mutation.placement is placement
    stranger = plan_mutation(
        make_pod(managed=False),
        namespace="default",
        operation="CREATE",
        config=config(),
        features=ServerFeatures(),
    )
    assert stranger.managed is False and stranger.operations == ()


def test_a_pod_with_invalid_annotations_is_still_patched() -> None:
    pod = make_pod(annotations={"node.elotl.co/instance-max-gpus": "many"})
    mutation = plan_mutation(
        pod, namespace="default", operation="CREATE", config=config(), features=ServerFeatures()
    )
    # luna-spec-from-seeds.md 4 (P15, P04): a pod with a Luna instance annotation is
    # bin-selected, even one the validation will refuse
    assert mutation.placement is Placement.BIN_SELECT
    assert {
        "op": "add",
        "path": "/metadata/labels/gibbous.dev~1placement",
        "value": "bin-select",
    } in mutation.operations


def test_gke_time_sharing_selector_only_when_gpus_are_shared() -> None:
    # GKE schedules a pod onto time-shared GPUs by these two node labels; with one slice
    # per GPU there is no sharing and no selector
    def selector_ops(slices: int) -> list[Any]:
        cfg = config(cloudProvider="gcp", nvidiaGPUTimeSlices=slices, placeNodeSelector=True)
        mutation = plan_mutation(
            make_pod(gpus=1),
            namespace="default",
            operation="CREATE",
            config=cfg,
            features=ServerFeatures(),
        )
        return [op for op in mutation.operations if "nodeSelector" in op["path"]]

    assert selector_ops(1) == []
    (added,) = selector_ops(2)
    assert added["value"] == {
        TIME_SHARING: "time-sharing",
        "cloud.google.com/gke-max-shared-clients-per-gpu": "2",
    }


def test_a_pod_gated_by_someone_else_is_not_released() -> None:
    pod = make_pod()
    pod["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    assert plan_release(pod, "node-1") == []


def test_time_shared_gpu_rule_skips_entries_that_are_not_containers() -> None:
    pod = time_shared({"name": "main", "resources": {"limits": {"nvidia.com/gpu": "2"}}})
    pod["spec"]["containers"].insert(0, "junk")
    assert too_many('"main"', "2") in problems(pod)


def test_every_unknown_luna_annotation_is_named() -> None:
    pod = make_pod(
        annotations={"node.elotl.co/instance-colour": "blue", "node.elotl.co/instance-size": "L"}
    )
    mutation = plan_mutation(
        pod, namespace="default", operation="CREATE", config=config(), features=ServerFeatures()
    )
    assert any(
        "annotation(s) node.elotl.co/instance-colour, node.elotl.co/instance-size not known" in w
        for w in mutation.warnings
    )

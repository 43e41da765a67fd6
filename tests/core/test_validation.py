from gibbous.core import keys
from gibbous.core.admission.validation import validate_pod
from tests.factories import config, make_pod


def test_valid_and_unmanaged_pods_pass() -> None:
    assert (
        validate_pod(
            make_pod(annotations={keys.INSTANCE_OFFERINGS: "spot"}),
            namespace="default",
            config=config(),
        )
        == []
    )
    bad_but_foreign = make_pod(managed=False, annotations={keys.INSTANCE_MAX_COST: "cheap"})
    assert validate_pod(bad_but_foreign, namespace="default", config=config()) == []


def test_bad_annotations_are_all_named() -> None:
    pod = make_pod(annotations={keys.INSTANCE_MAX_COST: "cheap", keys.INSTANCE_GPU_SKUS: "T4;L4"})
    problems = validate_pod(pod, namespace="default", config=config())
    assert len(problems) == 2
    assert any('node.elotl.co/instance-max-cost: invalid value "cheap"' in p for p in problems)


def test_bad_quantities_are_refused() -> None:
    problems = validate_pod(make_pod(cpu="two"), namespace="default", config=config())
    assert problems and "spec.containers[0].resources.requests.cpu" in problems[0]


def test_spot_only_with_on_demand_affinity_is_a_contradiction() -> None:
    pod = make_pod(
        annotations={keys.INSTANCE_OFFERINGS: "spot"},
        node_selector={keys.KARPENTER_CAPACITY_TYPE: "on-demand"},
    )
    problems = validate_pod(pod, namespace="default", config=config())
    assert problems and "contradicts" in problems[0]
    fine = make_pod(
        annotations={keys.INSTANCE_OFFERINGS: "spot,on-demand"},
        node_selector={keys.CAPACITY_TYPE: "on-demand"},
    )
    assert validate_pod(fine, namespace="default", config=config()) == []
    other_labels = make_pod(
        annotations={keys.INSTANCE_OFFERINGS: "spot"}, node_selector={"team": "ml"}
    )
    assert validate_pod(other_labels, namespace="default", config=config()) == []


def test_max_gpus_below_request() -> None:
    pod = make_pod(gpus=4, annotations={keys.INSTANCE_MAX_GPUS: "2"})
    assert (
        "below the 4 nvidia.com/gpu" in validate_pod(pod, namespace="default", config=config())[0]
    )
    assert validate_pod(pod, namespace="default", config=config(nvidiaGPUTimeSlices=2)) == []


def test_more_than_one_gpu_on_a_gke_time_shared_pod() -> None:
    pod = make_pod(gpus=2, node_selector={keys.GKE_GPU_SHARING_STRATEGY: "time-sharing"})
    problems = validate_pod(pod, namespace="default", config=config())
    assert problems and "at most 1 per container" in problems[0]
    one = make_pod(gpus=1, node_selector={keys.GKE_GPU_SHARING_STRATEGY: "time-sharing"})
    assert validate_pod(one, namespace="default", config=config()) == []

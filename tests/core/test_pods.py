from typing import Any

import pytest

from gibbous.core.errors import InvalidQuantityError
from gibbous.core.podmodel.pods import pod_requests, tolerates
from gibbous.core.podmodel.resources import Resources


def container(name: str, cpu: str, memory: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_app_containers_are_summed_and_one_pod_slot_added() -> None:
    pod = {"spec": {"containers": [container("a", "500m", "1Gi"), container("b", "250m", "512Mi")]}}
    assert pod_requests(pod) == Resources(cpu_millis=750, memory_bytes=1536 * 2**20, pods=1)


def test_largest_regular_init_container_wins_when_larger() -> None:
    pod = {
        "spec": {
            "initContainers": [container("init", "2", "100Mi")],
            "containers": [container("app", "500m", "1Gi")],
        }
    }
    requests = pod_requests(pod)
    assert requests.cpu_millis == 2000
    assert requests.memory_bytes == 2**30


def test_sidecars_add_to_app_and_to_later_init_containers() -> None:
    # Upstream example: sidecar 1 CPU, then init 2 CPU (runs beside the sidecar: 3), app 1 CPU.
    pod = {
        "spec": {
            "initContainers": [
                container("sidecar", "1", "1Gi", restartPolicy="Always"),
                container("migrate", "2", "1Gi"),
            ],
            "containers": [container("app", "1", "1Gi")],
        }
    }
    requests = pod_requests(pod)
    assert requests.cpu_millis == 3000  # max(app 1 + sidecar 1, init 2 + sidecar 1)
    assert requests.memory_bytes == 2 * 2**30


def test_init_before_sidecar_does_not_count_the_sidecar() -> None:
    pod = {
        "spec": {
            "initContainers": [
                container("early", "3", "1Gi"),
                container("sidecar", "1", "1Gi", restartPolicy="Always"),
            ],
            "containers": [container("app", "1", "1Gi")],
        }
    }
    assert pod_requests(pod).cpu_millis == 3000


def test_overhead_is_added() -> None:
    pod = {
        "spec": {
            "containers": [container("a", "1", "1Gi")],
            "overhead": {"cpu": "250m", "memory": "120Mi"},
        }
    }
    requests = pod_requests(pod)
    assert requests.cpu_millis == 1250
    assert requests.memory_bytes == 2**30 + 120 * 2**20


def test_limits_only_default_requests_including_gpus() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "resources": {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}},
                },
                {"name": "b", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "3"}}},
            ]
        }
    }
    requests = pod_requests(pod)
    assert requests.cpu_millis == 3000  # a: limit as request; b: its request, not its limit
    assert requests.gpus == 1
    assert requests.memory_bytes == 4 * 2**30


def test_extended_resources_are_kept() -> None:
    pod = {
        "spec": {"containers": [{"name": "a", "resources": {"limits": {"example.com/fpga": "2"}}}]}
    }
    assert pod_requests(pod).extended == (("example.com/fpga", 2),)


def test_pod_without_requests_needs_only_a_pod_slot() -> None:
    assert pod_requests({"spec": {"containers": [{"name": "a"}]}}) == Resources(pods=1)


def test_bad_quantity_names_the_container_field() -> None:
    pod = {"spec": {"containers": [container("a", "1", "1Gi"), container("b", "lots", "1Gi")]}}
    with pytest.raises(
        InvalidQuantityError, match=r"spec\.containers\[1\]\.resources\.requests\.cpu"
    ):
        pod_requests(pod)


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        (
            {"key": "k", "operator": "Equal", "value": "x", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            False,
        ),
        (
            {"key": "k", "operator": "Exists"},
            {"key": "k", "value": "v", "effect": "NoExecute"},
            True,
        ),
        ({"operator": "Exists"}, {"key": "any", "effect": "NoSchedule"}, True),
        (
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
        ),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ],
)
def test_toleration_matching_follows_upstream(
    toleration: dict[str, Any], taint: dict[str, Any], expected: bool
) -> None:
    assert tolerates([toleration], taint) is expected


def test_pod_level_requests_replace_the_aggregate_then_overhead_is_added() -> None:
    # scheduling-fidelity-facts §2.4 C (kube-scheduler's PodRequests, PodLevelResources on).
    pod = {
        "spec": {
            "resources": {"requests": {"cpu": "4"}},
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                {
                    "name": "b",
                    "resources": {"requests": {"memory": "2Gi"}, "limits": {"nvidia.com/gpu": "1"}},
                },
            ],
            "overhead": {"cpu": "250m", "memory": "120Mi"},
        }
    }
    got = pod_requests(pod)
    assert (got.cpu_millis, got.memory_bytes, got.gpus, got.pods) == (4250, 3347054592, 1, 1)


def test_pod_level_cannot_override_gpus_or_storage_and_limits_stand_in_only_where_unset() -> None:
    containers = [{"name": "a", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}}]
    pod = {
        "spec": {
            "resources": {
                "requests": {"nvidia.com/gpu": "4", "ephemeral-storage": "10Gi"},
                "limits": {"cpu": "3", "memory": "2Gi"},
            },
            "containers": containers,
        }
    }
    got = pod_requests(pod)
    # cpu: the containers request it, so the aggregate is the request (API defaulting);
    # memory: none requested, so the pod-level limit becomes the request.
    assert (got.cpu_millis, got.memory_bytes, got.gpus, got.ephemeral_bytes) == (
        1000,
        2 * 2**30,
        1,
        0,
    )


def test_pod_level_hugepages_replace_the_containers() -> None:
    pod = {
        "spec": {
            "resources": {"requests": {"hugepages-2Mi": "100Mi", "memory": "1Gi"}},
            "containers": [
                {
                    "name": "a",
                    "resources": {"requests": {"hugepages-2Mi": "10Mi", "memory": "512Mi"}},
                }
            ],
        }
    }
    got = pod_requests(pod)
    assert got.memory_bytes == 2**30 and dict(got.extended) == {"hugepages-2Mi": 100 * 2**20}

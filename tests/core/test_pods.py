from typing import Any

import pytest

from gibbous.core.errors import InvalidQuantityError
from gibbous.core.pods import pod_requests, tolerates
from gibbous.core.resources import Resources


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

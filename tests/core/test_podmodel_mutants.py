"""Pod-model rules the mutation run of issue 37 (docs/mutation.md) showed no test held.

Expected values come from the controllers' own rules (Spark on Kubernetes' pod labels and
memory overhead, Spark's dynamic allocation start size, LeaderWorkerSet's size, JobSet and
Kubeflow Trainer's suspend), the Kubernetes API's required fields, and hand computations
written here, on the upstream example manifests in tests/fixtures/workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gibbous.core.admission.validation import validate_pod
from gibbous.core.errors import ManifestError
from gibbous.core.planning.estimate import expand_workloads, workload_pods
from gibbous.core.podmodel.batchcrds import spark_size_mib
from gibbous.core.podmodel.pods import pod_requests
from gibbous.core.podmodel.podschema import pod_spec_problems
from tests.factories import config, make_pod

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workloads"
MI = 1 << 20


def fixture(name: str) -> list[Any]:
    return list(yaml.safe_load_all((FIXTURES / name).read_text()))


def test_spark_pods_carry_their_role_labels() -> None:
    # Spark on Kubernetes labels its pods spark-role=driver / executor, with the labels the
    # SparkApplication gives each role.
    (doc,) = fixture("spark-pi.yaml")
    doc["spec"]["driver"]["labels"] = {"team": "ml"}
    doc["spec"]["executor"]["labels"] = {"team": "ml", "tier": "batch"}
    driver, executor = expand_workloads([doc])[0]
    assert workload_pods(driver)[0]["metadata"]["labels"] == {"team": "ml", "spark-role": "driver"}
    assert workload_pods(executor)[0]["metadata"]["labels"] == {
        "team": "ml",
        "tier": "batch",
        "spark-role": "executor",
    }


@pytest.mark.parametrize(("kind", "overhead_mib"), [("Scala", 1024), ("Python", 4096), ("R", 4096)])
def test_spark_overhead_factor_by_application_type(kind: str, overhead_mib: int) -> None:
    # spark.kubernetes.memoryOverheadFactor: 0.1 for JVM jobs, 0.4 for Python and R;
    # 10g = 10240 MiB, so 1024 or 4096 MiB (both above the 384 MiB floor).
    (doc,) = fixture("spark-pi.yaml")
    doc["spec"]["type"] = kind
    doc["spec"]["executor"] = {"cores": 1, "memory": "10g", "instances": 1}
    _, executor = expand_workloads([doc])[0]
    memory = pod_requests(workload_pods(executor)[0]).memory_bytes
    assert memory == (10240 + overhead_mib) * MI


@pytest.mark.parametrize(
    ("dynamic", "instances", "executors"),
    [
        # Spark's initial executors: max(minExecutors, initialExecutors, instances if set)
        ({"enabled": True, "minExecutors": 3, "initialExecutors": 5}, 2, 5),
        ({"enabled": True, "minExecutors": 6, "initialExecutors": 5}, 2, 6),
        ({"enabled": True, "minExecutors": 1, "initialExecutors": 1}, 4, 4),
        ({"enabled": False, "minExecutors": 6}, 2, 2),
    ],
)
def test_spark_dynamic_allocation_starts_with_the_largest_setting(
    dynamic: dict[str, Any], instances: int, executors: int
) -> None:
    (doc,) = fixture("spark-pi.yaml")
    doc["spec"]["dynamicAllocation"] = dynamic
    doc["spec"]["executor"]["instances"] = instances
    _, executor = expand_workloads([doc])[0]
    assert executor.replicas == executors


@pytest.mark.parametrize("bad", [1.5, -1, None, ["1g"]])
def test_spark_sizes_that_are_not_jvm_sizes_are_named(bad: object) -> None:
    with pytest.raises(ManifestError, match=r"^spec\.driver\.memory: expected a JVM memory size"):
        spark_size_mib(bad, "spec.driver.memory")


def test_a_leader_worker_set_of_size_one_is_leaders_only() -> None:
    # LeaderWorkerSet: size counts the leader; size 1 means no workers
    (doc,) = fixture("lws-multi-template.yaml")
    doc["spec"]["leaderWorkerTemplate"]["size"] = 1
    leader, worker = expand_workloads([doc])[0]
    assert (leader.replicas, worker.replicas) == (3, 0)


def test_jobset_and_trainjob_workloads_are_named_by_their_kind() -> None:
    workloads, _ = expand_workloads(fixture("jobset-paralleljobs.yaml"))
    assert {(w.name, w.kind, w.replicas) for w in workloads} == {
        ("sleep/workers", "JobSet", 4),
        ("sleep/driver", "JobSet", 1),
    }
    (trainer,), _ = expand_workloads(fixture("trainer-torch-distributed.yaml"))
    assert trainer.kind == "TrainJob"


def test_a_suspended_trainjob_makes_no_pods() -> None:
    documents = fixture("trainer-torch-distributed.yaml")
    documents[1]["spec"]["suspend"] = True
    workloads, notes = expand_workloads(documents)
    assert workloads == []
    assert notes[-1].endswith(": suspended: no pods until spec.suspend is false")


def test_required_fields_of_a_node_selector_requirement() -> None:
    # NodeSelectorRequirement: key and operator are required (core/v1 types.go)
    term = {"matchExpressions": [{"key": "team", "values": ["ml"]}]}
    spec = {
        "containers": [{"name": "main", "image": "busybox"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        },
    }
    path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    assert pod_spec_problems(spec) == [
        f"{path}.nodeSelectorTerms[0].matchExpressions[0].operator: required "
        "(NodeSelectorRequirement), missing"
    ]
    term["matchExpressions"][0]["operator"] = "In"
    assert pod_spec_problems(spec) == []


def test_the_webhook_refuses_a_node_selector_requirement_without_operator() -> None:
    # the API server would refuse it too: the webhook names the field
    pod = make_pod("p")
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "team", "values": ["ml"]}]}]
            }
        }
    }
    problems = validate_pod(pod, namespace="default", config=config())
    assert problems == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator: required "
        "(NodeSelectorRequirement), missing"
    ]

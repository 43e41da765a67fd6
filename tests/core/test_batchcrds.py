"""Workload CRDs counted as their controllers create pods, on each project's own published
sample (tests/fixtures/workloads, each with its source URL). Expected pod counts and requests
are worked out by hand from the projects' API docs as cited, and kube-scheduler's PodRequests
(a container that sets only a limit requests that limit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gibbous.core.errors import ManifestError
from gibbous.core.planning.estimate import expand_workloads, workload_pods
from gibbous.core.podmodel.batchcrds import spark_size_mib
from gibbous.core.podmodel.pods import pod_requests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workloads"
MI = 1 << 20


def expand_file(name: str) -> dict[str, tuple[int, int, int]]:
    """workload name -> (pods, CPU millis, memory bytes of one pod)."""
    documents = list(yaml.safe_load_all((FIXTURES / name).read_text()))
    workloads, _ = expand_workloads(documents, source=name)
    out = {}
    for w in workloads:
        requests = pod_requests(workload_pods(w)[0]) if w.replicas else None
        out[w.name] = (
            w.replicas,
            requests.cpu_millis if requests else 0,
            requests.memory_bytes if requests else 0,
        )
    return out


def test_volcano_job_tasks_are_replicas_of_their_templates() -> None:
    # One ps and two workers (tasks[].replicas); the sample requests nothing (resources: {}).
    # Before, the batch.volcano.sh Job read as a batch/v1 Job and the run exited 2.
    assert expand_file("volcano-tf-dist-mnist.yaml") == {
        "tensorflow-dist-mnist/ps": (1, 0, 0),
        "tensorflow-dist-mnist/worker": (2, 0, 0),
    }


def test_pytorchjob_master_and_workers() -> None:
    assert expand_file("pytorchjob-simple.yaml") == {
        "pytorch-simple/master": (1, 0, 0),
        "pytorch-simple/worker": (1, 0, 0),
    }


def test_pytorchjob_replicas_default_to_one_and_suspend_makes_none() -> None:
    template = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}}
    doc: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "t"},
        "spec": {"pytorchReplicaSpecs": {"Worker": {"template": template}}},
    }
    (worker,), _ = expand_workloads([doc])
    assert (worker.replicas, pod_requests(workload_pods(worker)[0]).cpu_millis) == (1, 2000)
    doc["spec"]["runPolicy"] = {"suspend": True}
    workloads, notes = expand_workloads([doc])
    assert workloads == [] and "suspended" in notes[0]


def test_jobset_replicated_jobs_times_replicas_times_parallelism() -> None:
    # workers: 1 Job (replicas default 1) x min(parallelism 4, completions 4); driver: 1 x 1.
    assert expand_file("jobset-paralleljobs.yaml") == {
        "sleep/workers": (4, 0, 0),
        "sleep/driver": (1, 0, 0),
    }
    doc = yaml.safe_load((FIXTURES / "jobset-paralleljobs.yaml").read_text())
    doc["spec"]["replicatedJobs"][0]["replicas"] = 3
    doc["spec"]["replicatedJobs"][0]["template"]["spec"]["completions"] = 2
    workloads, _ = expand_workloads([doc])
    assert workloads[0].replicas == 3 * 2


def test_leader_worker_set_size_times_replicas() -> None:
    # 3 groups of size 4: 3 leaders from leaderTemplate, 3 x 3 workers; both request 50m.
    assert expand_file("lws-multi-template.yaml") == {
        "leaderworkerset-multi-template/leader": (3, 50, 0),
        "leaderworkerset-multi-template/worker": (9, 50, 0),
    }


def test_leader_worker_set_without_leader_template_uses_the_worker_template() -> None:
    doc = yaml.safe_load((FIXTURES / "lws-multi-template.yaml").read_text())
    del doc["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    doc["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["resources"][
        "requests"
    ]["cpu"] = "7"
    leader, worker = expand_workloads([doc])[0]
    assert pod_requests(workload_pods(leader)[0]).cpu_millis == 7000
    assert (leader.replicas, worker.replicas) == (3, 9)


def test_spark_pi_driver_and_executor_with_memory_overhead() -> None:
    # Driver and executor: cores 1, memory 512m (512 MiB); overhead max(0.1 x 512 = 51, 384)
    # = 384 MiB (Scala is a JVM app), so each pod requests 1 CPU and 896Mi. One executor.
    assert expand_file("spark-pi.yaml") == {
        "spark-pi/driver": (1, 1000, 896 * MI),
        "spark-pi/executor": (1, 1000, 896 * MI),
    }


def test_spark_python_overhead_factor_instances_default_and_gpu() -> None:
    doc = yaml.safe_load((FIXTURES / "spark-pi.yaml").read_text())
    doc["spec"]["type"] = "Python"
    doc["spec"]["executor"] = {
        "cores": 4,
        "memory": "10g",
        "gpu": {"name": "nvidia.com/gpu", "quantity": 1},
    }
    driver, executor = expand_workloads([doc])[0]
    # Executor: 10 GiB = 10240 MiB, non-JVM factor 0.4: 4096 MiB overhead; instances default 2.
    requests = pod_requests(workload_pods(executor)[0])
    assert executor.replicas == 2
    assert (requests.cpu_millis, requests.memory_bytes) == (4000, (10240 + 4096) * MI)
    assert requests.gpus == 1
    # Driver: 512m, 0.4 x 512 = 204 < 384, so 384.
    assert pod_requests(workload_pods(driver)[0]).memory_bytes == (512 + 384) * MI


@pytest.mark.parametrize(
    ("text", "mib"),
    [("512m", 512), ("2g", 2048), ("1024", 1024), ("1t", 1024 * 1024), ("2gb", 2048)],
)
def test_spark_memory_sizes_read_as_jvm_sizes(text: str, mib: int) -> None:
    assert spark_size_mib(text, "m") == mib


def test_spark_bad_memory_is_a_clear_error() -> None:
    doc = yaml.safe_load((FIXTURES / "spark-pi.yaml").read_text())
    doc["spec"]["driver"]["memory"] = "lots"
    with pytest.raises(ManifestError, match=r"spec\.driver\.memory: expected a JVM memory size"):
        expand_workloads([doc])


def spark_with_conf(conf: dict[str, str], **spec: Any) -> dict[str, Any]:
    """A SparkApplication whose sizes come from sparkConf, with `spec` fields beside it."""
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "etl"},
        "spec": {"type": "Scala", "sparkConf": conf, "driver": {}, "executor": {}, **spec},
    }


def pods_of(doc: dict[str, Any]) -> dict[str, tuple[int, int, int, int | None]]:
    """workload -> (pods, CPU millis, memory MiB, CPU limit millis) of one pod."""
    out = {}
    for w in expand_workloads([doc])[0]:
        pod = workload_pods(w)[0]
        requests = pod_requests(pod)
        limit = pod["spec"]["containers"][0]["resources"]["limits"].get("cpu")
        out[w.name.split("/")[1]] = (
            w.replicas,
            requests.cpu_millis,
            requests.memory_bytes // MI,
            None
            if limit is None
            else int(float(limit.rstrip("m")) * (1 if "m" in limit else 1000)),
        )
    return out


def test_spark_sizes_in_spark_conf_count_when_the_spec_leaves_them_out() -> None:
    doc = spark_with_conf(
        {
            "spark.executor.instances": "5",
            "spark.executor.memory": "4g",
            "spark.executor.cores": "2",
            "spark.kubernetes.executor.limit.cores": "3",
            "spark.driver.memory": "2g",
            "spark.kubernetes.driver.request.cores": "500m",
        }
    )
    # Executors: 5 of 2 CPU, 4096 MiB + max(0.1 x 4096 = 409, 384) = 4505 MiB, limit 3 CPU.
    # Driver: request.cores beats cores (default 1): 500m; 2048 + max(204, 384) = 2432 MiB.
    assert pods_of(doc) == {
        "driver": (1, 500, 2432, None),
        "executor": (5, 2000, 4505, 3000),
    }


def test_spark_spec_fields_beat_spark_conf_and_spark_conf_beats_the_factor_field() -> None:
    # The operator passes sparkConf after spec.memoryOverheadFactor and before the driver and
    # executor fields; spark-submit keeps the last --conf of a key.
    doc = spark_with_conf(
        {
            "spark.executor.instances": "5",
            "spark.executor.memory": "4g",
            "spark.kubernetes.memoryOverheadFactor": "0.2",
            "spark.executor.memoryOverheadFactor": "0.5",
        },
        memoryOverheadFactor="0.4",
    )
    doc["spec"]["executor"] = {"instances": 3, "memory": "8g"}
    doc["spec"]["driver"] = {"memory": "4g"}
    # Executors: the field's 3 and 8 GiB; its own factor 0.5: 8192 + 4096 = 12288 MiB.
    # Driver: spark.kubernetes.memoryOverheadFactor 0.2 (not the field's 0.4): 4096 + 819.
    assert pods_of(doc) == {
        "driver": (1, 1000, 4915, None),
        "executor": (3, 1000, 12288, None),
    }


def test_spark_dynamic_allocation_from_spark_conf() -> None:
    doc = spark_with_conf(
        {
            "spark.dynamicAllocation.enabled": "true",
            "spark.dynamicAllocation.minExecutors": "4",
            "spark.dynamicAllocation.initialExecutors": "2",
        }
    )
    # Initial executors: the largest of min 4, initial 2 and instances (unset).
    assert pods_of(doc)["executor"][0] == 4
    # A spec field that leaves dynamic allocation off adds no --conf: sparkConf's stands.
    doc["spec"]["dynamicAllocation"] = {"enabled": False, "minExecutors": 9}
    assert pods_of(doc)["executor"][0] == 4
    # On in the field: its minExecutors (added after sparkConf) wins.
    doc["spec"]["dynamicAllocation"] = {"enabled": True, "minExecutors": 6}
    assert pods_of(doc)["executor"][0] == 6


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"spark.executor.instances": "many"}, r"spec\.sparkConf\[spark\.executor\.instances\]"),
        ({"spark.driver.memory": "lots"}, r"spec\.sparkConf\[spark\.driver\.memory\]"),
        (
            {"spark.kubernetes.memoryOverheadFactor": "high"},
            r"spec\.sparkConf\[spark\.kubernetes\.memoryOverheadFactor\]",
        ),
    ],
)
def test_spark_bad_spark_conf_values_are_named(conf: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        expand_workloads([spark_with_conf(conf)])


def test_kinds_are_recognised_by_group_and_kind() -> None:
    # A Job of an unknown group is neither a batch/v1 Job nor an error: a note that names it.
    doc = {"apiVersion": "batch.example.com/v1", "kind": "Job", "metadata": {"name": "j"}}
    workloads, notes = expand_workloads([doc], source="f.yaml")
    assert workloads == []
    assert "kind batch.example.com/v1 Job is not counted" in notes[0]


def test_trainjob_is_its_runtimes_jobset_with_num_nodes_and_resources_per_node() -> None:
    # The trainer job (ancestor label `trainer`) gets numNodes 4 pods, its `node` container
    # resourcesPerNode: 8 CPU, 32Gi, 1 GPU each. The runtime's own mlPolicy says 1.
    assert expand_file("trainer-torch-distributed.yaml") == {
        "pytorch-training/node": (4, 8000, 32 << 30),
    }
    text = (FIXTURES / "trainer-torch-distributed.yaml").read_text()
    documents = list(yaml.safe_load_all(text))
    del documents[1]["spec"]["trainer"]["numNodes"]
    (workload,), _ = expand_workloads(documents)
    assert workload.replicas == 1  # the runtime's mlPolicy.numNodes
    _, notes = expand_workloads(documents[1:])
    assert "ClusterTrainingRuntime 'torch-distributed'" in notes[0]
    assert "is not in the input" in notes[0] and "creates no pods" not in notes[0]

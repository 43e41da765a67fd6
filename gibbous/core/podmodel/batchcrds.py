"""Batch and serving workload CRDs counted as their controllers create pods. Each kind is
recognised by its API group and kind together (a Volcano `Job` is not a `batch/v1` Job).

* Volcano `batch.volcano.sh` Job: every task makes `replicas` pods of its `template`
  (`TaskSpec.Replicas`, an int32 without a CRD default: missing is 0); `minAvailable` is a
  gang-scheduling floor, not a count, so all replicas are planned.
* Kubeflow training-operator `kubeflow.org` PyTorchJob, TFJob, XGBoostJob, PaddleJob,
  JAXJob, MPIJob: each entry of `<framework>ReplicaSpecs` makes `replicas` pods
  ("If unspecified, defaults to 1": `ReplicaSpec`); `runPolicy.suspend` makes none.
* JobSet `jobset.x-k8s.io`: each replicated job makes `replicas` (default 1) Jobs, each with
  min(parallelism, completions) pods (batch/v1 defaults: parallelism 1); `suspend` none.
* LeaderWorkerSet `leaderworkerset.x-k8s.io`: `replicas` (default 1) groups of `size`
  (default 1) pods: one leader from `leaderTemplate` (or `workerTemplate` when absent) and
  size - 1 workers from `workerTemplate`.
* Kubeflow Trainer `trainer.kubeflow.org` TrainJob: the JobSet its runtime (in the same
  input) makes, with the TrainJob's numNodes and resourcesPerNode (`train_job`).
* Spark operator `sparkoperator.k8s.io` SparkApplication: one driver and
  `executor.instances` executors (Spark's default 2; `dynamicAllocation.initialExecutors`
  when dynamic allocation is on). Each pod requests `coreRequest` or `cores` (default 1)
  CPU and memory + memoryOverhead, where the overhead, unless set, is
  max(factor x memory, 384MiB) with factor `memoryOverheadFactor`, else 0.1 for JVM apps
  and 0.4 for Python and R (Spark's running-on-kubernetes configuration); memory defaults
  to 1g and is a JVM size (k, m, g, t binary; no suffix MiB). `gpu` adds a limit.
  `sparkConf` counts as spark-submit reads it: the operator passes `sparkConf` as `--conf`
  after `memoryOverheadFactor` and before the driver, executor and dynamicAllocation fields
  (kubeflow/spark-operator `internal/controller/sparkapplication/submission.go`,
  `buildSparkSubmitArgs`), and the last `--conf` of a key wins. So a field of the spec beats
  the same property in `sparkConf`, which beats the `memoryOverheadFactor` field;
  `spark.driver|executor.memoryOverheadFactor` beat `spark.kubernetes.memoryOverheadFactor`
  (Spark's configuration reference).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from gibbous.core.errors import ManifestError, quoted
from gibbous.core.podmodel.pods import as_map
from gibbous.core.podmodel.workloads import Workload, job_pods, pod_template, whole_number

Expander = Callable[[Mapping[str, Any], str, str, str], tuple[list[Workload], list[str]]]

KUBEFLOW_REPLICA_SPECS = {
    "PyTorchJob": "pytorchReplicaSpecs",
    "TFJob": "tfReplicaSpecs",
    "XGBoostJob": "xgbReplicaSpecs",
    "PaddleJob": "paddleReplicaSpecs",
    "JAXJob": "jaxReplicaSpecs",
    "MPIJob": "mpiReplicaSpecs",
}

SPARK_DEFAULT_EXECUTORS = 2
SPARK_DEFAULT_MEMORY_MIB = 1024
SPARK_MIN_OVERHEAD_MIB = 384
SPARK_JVM_OVERHEAD_FACTOR = 0.1
SPARK_NON_JVM_OVERHEAD_FACTOR = 0.4
_JVM_SIZE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)b?\s*$", re.IGNORECASE)
_JVM_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2, "p": 1024**3, "": 1}


def _list_of_maps(value: object, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list, got {quoted(value)}")
    return [as_map(item) for item in value]


def volcano_job(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    tasks = _list_of_maps(as_map(doc.get("spec")).get("tasks"), f"{where} spec.tasks")
    out = []
    for index, task in enumerate(tasks):
        task_where = f"{where} spec.tasks[{index}]"
        out.append(
            Workload(
                f"{name}/{task.get('name') or f'task-{index}'}",
                namespace,
                "Job (Volcano)",
                whole_number(task.get("replicas"), 0, f"{task_where}.replicas"),
                pod_template(task, "template", task_where),
            )
        )
    return out, []


def kubeflow_job(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    kind = str(doc.get("kind"))
    spec = as_map(doc.get("spec"))
    if as_map(spec.get("runPolicy")).get("suspend") is True:
        return [], [f"{where}: suspended: no pods until spec.runPolicy.suspend is false"]
    field = KUBEFLOW_REPLICA_SPECS[kind]
    replica_specs = spec.get(field)
    if not isinstance(replica_specs, Mapping) or not replica_specs:
        raise ManifestError(f"{where}: spec.{field} is missing or empty")
    out = []
    for role, replica_spec in replica_specs.items():
        role_where = f"{where} spec.{field}.{role}"
        role_spec = as_map(replica_spec)
        out.append(
            Workload(
                f"{name}/{str(role).lower()}",
                namespace,
                kind,
                whole_number(role_spec.get("replicas"), 1, f"{role_where}.replicas"),
                pod_template(role_spec, "template", role_where),
            )
        )
    return out, []


def jobset(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    spec = as_map(doc.get("spec"))
    if spec.get("suspend") is True:
        return [], [f"{where}: suspended: no pods until spec.suspend is false"]
    jobs = _list_of_maps(spec.get("replicatedJobs"), f"{where} spec.replicatedJobs")
    out = []
    for index, job in enumerate(jobs):
        job_where = f"{where} spec.replicatedJobs[{index}]"
        job_spec = as_map(as_map(job.get("template")).get("spec"))
        copies = whole_number(job.get("replicas"), 1, f"{job_where}.replicas")
        out.append(
            Workload(
                f"{name}/{job.get('name') or f'job-{index}'}",
                namespace,
                "JobSet",
                copies * job_pods(job_spec, f"{job_where}.template.spec"),
                pod_template(job, "template.spec.template", job_where),
            )
        )
    return out, []


def leader_worker_set(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    spec = as_map(doc.get("spec"))
    groups = whole_number(spec.get("replicas"), 1, f"{where} spec.replicas")
    lwt = as_map(spec.get("leaderWorkerTemplate"))
    lwt_where = f"{where} spec.leaderWorkerTemplate"
    size = whole_number(lwt.get("size"), 1, f"{lwt_where}.size")
    if size < 1:
        raise ManifestError(f"{lwt_where}.size: must be at least 1 (the leader), got {size}")
    worker = pod_template(lwt, "workerTemplate", lwt_where)
    leader = pod_template(lwt, "leaderTemplate", lwt_where) if "leaderTemplate" in lwt else worker
    kind = "LeaderWorkerSet"
    return [
        Workload(f"{name}/leader", namespace, kind, groups, leader),
        Workload(f"{name}/worker", namespace, kind, groups * (size - 1), worker),
    ], []


def spark_size_mib(value: object, where: str) -> int:
    """A JVM memory size ("512m", "2g", "1024") in MiB, as Spark's byteStringAs reads it
    for spark.driver.memory (no suffix: MiB)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _JVM_SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ManifestError(
            f"{where}: expected a JVM memory size such as 512m or 2g, got {quoted(value)}"
        )
    return math.floor(int(match.group(1)) * _JVM_UNIT_MIB[match.group(2).lower()])


def _spark_conf(spec: Mapping[str, Any], where: str) -> dict[str, str]:
    conf = spec.get("sparkConf")
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ManifestError(f"{where} spec.sparkConf: expected a map of strings")
    return {str(key): str(value) for key, value in conf.items()}


def _spark_setting(
    role_spec: Mapping[str, Any], field: str, conf: Mapping[str, str], key: str, where: str
) -> tuple[object, str]:
    """The role's `field`, else the `sparkConf` property `key` (the field's --conf comes
    later, so it wins), with where the value came from for error messages."""
    if role_spec.get(field) is not None:
        return role_spec[field], f"{where}.{field}"
    return conf.get(key), f"{where.rsplit(' ', 1)[0]} spec.sparkConf[{key}]"


def _overhead_factor(spec: Mapping[str, Any], role: str, conf: Mapping[str, str]) -> float:
    for key in (f"spark.{role}.memoryOverheadFactor", "spark.kubernetes.memoryOverheadFactor"):
        if key in conf:
            text: object = conf[key]
            where = f"spec.sparkConf[{key}]"
            break
    else:
        text, where = spec.get("memoryOverheadFactor"), "spec.memoryOverheadFactor"
    if text is None:
        if spec.get("type") in ("Python", "R"):
            return SPARK_NON_JVM_OVERHEAD_FACTOR
        return SPARK_JVM_OVERHEAD_FACTOR
    try:
        return float(str(text))
    except ValueError:
        raise ManifestError(f"{where}: expected a number, got {quoted(text)}") from None


def _spark_pod(
    spec: Mapping[str, Any],
    role: str,
    role_spec: Mapping[str, Any],
    conf: Mapping[str, str],
    where: str,
) -> Mapping[str, Any]:
    memory_value, memory_where = _spark_setting(
        role_spec, "memory", conf, f"spark.{role}.memory", where
    )
    memory = (
        SPARK_DEFAULT_MEMORY_MIB
        if memory_value is None
        else spark_size_mib(memory_value, memory_where)
    )
    overhead_value, overhead_where = _spark_setting(
        role_spec, "memoryOverhead", conf, f"spark.{role}.memoryOverhead", where
    )
    if overhead_value is not None:
        overhead = spark_size_mib(overhead_value, overhead_where)
    else:
        factor = _overhead_factor(spec, role, conf)
        overhead = max(int(factor * memory), SPARK_MIN_OVERHEAD_MIB)
    request, _ = _spark_setting(
        role_spec, "coreRequest", conf, f"spark.kubernetes.{role}.request.cores", where
    )
    cores, _ = _spark_setting(role_spec, "cores", conf, f"spark.{role}.cores", where)
    requests: dict[str, Any] = {
        "cpu": str(request or cores or 1),
        "memory": f"{memory + overhead}Mi",
    }
    limits: dict[str, Any] = {"memory": f"{memory + overhead}Mi"}
    core_limit, _ = _spark_setting(
        role_spec, "coreLimit", conf, f"spark.kubernetes.{role}.limit.cores", where
    )
    if core_limit:
        limits["cpu"] = str(core_limit)
    gpu = as_map(role_spec.get("gpu"))
    if gpu.get("name"):
        quantity = whole_number(gpu.get("quantity"), 0, f"{where}.gpu.quantity")
        limits[str(gpu["name"])] = quantity
    selector = {**as_map(spec.get("nodeSelector")), **as_map(role_spec.get("nodeSelector"))}
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": f"spark-kubernetes-{role}",
                "resources": {"requests": requests, "limits": limits},
            }
        ]
    }
    if selector:
        pod_spec["nodeSelector"] = selector
    for key in ("affinity", "tolerations", "schedulerName", "priorityClassName"):
        if role_spec.get(key) is not None:
            pod_spec[key] = role_spec[key]
    labels = {**as_map(role_spec.get("labels")), "spark-role": role}
    return {"metadata": {"labels": labels}, "spec": pod_spec}


def spark_application(
    doc: Mapping[str, Any], name: str, namespace: str, where: str
) -> tuple[list[Workload], list[str]]:
    spec = as_map(doc.get("spec"))
    conf = _spark_conf(spec, where)
    driver = as_map(spec.get("driver"))
    executor = as_map(spec.get("executor"))
    dynamic = as_map(spec.get("dynamicAllocation"))

    def count(value: object, key: str, field_where: str) -> int | None:
        """A count from the spec's field, else from sparkConf's `key`; None when neither."""
        if value is not None:
            return whole_number(value, 0, field_where)
        if key not in conf:
            return None
        text = conf[key].strip()
        if not text.isdigit():
            raise ManifestError(
                f"{where} spec.sparkConf[{key}]: expected a whole number, got {quoted(conf[key])}"
            )
        return int(text)

    instances = count(
        executor.get("instances"), "spark.executor.instances", f"{where} spec.executor.instances"
    )
    # The operator adds spark.dynamicAllocation.* only when the field enables it; otherwise
    # sparkConf's own spark.dynamicAllocation.enabled stands.
    dynamic_on = dynamic.get("enabled") is True
    if not dynamic_on:
        dynamic = {}
        dynamic_on = conf.get("spark.dynamicAllocation.enabled", "").strip().lower() == "true"
    if dynamic_on:
        # Spark's getDynamicAllocationInitialExecutors: the largest of minExecutors,
        # initialExecutors and spark.executor.instances (when set).
        base = f"{where} spec.dynamicAllocation"
        executors = max(
            count(
                dynamic.get("minExecutors"),
                "spark.dynamicAllocation.minExecutors",
                f"{base}.minExecutors",
            )
            or 0,
            count(
                dynamic.get("initialExecutors"),
                "spark.dynamicAllocation.initialExecutors",
                f"{base}.initialExecutors",
            )
            or 0,
            instances or 0,
        )
    else:
        executors = SPARK_DEFAULT_EXECUTORS if instances is None else instances
    kind = "SparkApplication"
    return [
        Workload(
            f"{name}/driver",
            namespace,
            kind,
            1,
            _spark_pod(spec, "driver", driver, conf, f"{where} spec.driver"),
        ),
        Workload(
            f"{name}/executor",
            namespace,
            kind,
            executors,
            _spark_pod(spec, "executor", executor, conf, f"{where} spec.executor"),
        ),
    ], []


TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_RUNTIME_KINDS = ("TrainingRuntime", "ClusterTrainingRuntime")
TRAINER_ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"


def runtime_key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
    """How a TrainJob's runtimeRef finds its runtime: a ClusterTrainingRuntime by name, a
    TrainingRuntime by name in the TrainJob's namespace."""
    return (kind, namespace if kind == "TrainingRuntime" else "", name)


def train_job(
    doc: Mapping[str, Any],
    runtimes: Mapping[tuple[str, str, str], Mapping[str, Any]],
    name: str,
    namespace: str,
    where: str,
) -> tuple[list[Workload], list[str]]:
    """A Kubeflow Trainer TrainJob as the trainer's JobSet plugin builds its JobSet from the
    runtime it names (kubeflow/trainer pkg/runtime/framework/plugins/jobset/builder.go):
    the replicated job labelled `trainjob-ancestor-step: trainer` gets 1 replica and
    parallelism = completions = numNodes (the TrainJob's, else the runtime's mlPolicy, else
    1), its `node` containers get `resourcesPerNode`; initializer jobs get 1 replica."""
    spec = as_map(doc.get("spec"))
    if spec.get("suspend") is True:
        return [], [f"{where}: suspended: no pods until spec.suspend is false"]
    ref = as_map(spec.get("runtimeRef"))
    kind = str(ref.get("kind") or "ClusterTrainingRuntime")
    runtime = runtimes.get(runtime_key(kind, namespace, str(ref.get("name") or "")))
    if runtime is None:
        return [], [
            f"{where}: not counted: its pods come from the {kind} {ref.get('name')!r} it "
            "names (spec.runtimeRef), which is not in the input; add the runtime's manifest"
        ]
    runtime_spec = as_map(runtime.get("spec"))
    trainer = as_map(spec.get("trainer"))
    nodes = whole_number(
        trainer.get("numNodes", as_map(runtime_spec.get("mlPolicy")).get("numNodes")),
        1,
        f"{where} spec.trainer.numNodes",
    )
    per_node = as_map(trainer.get("resourcesPerNode"))
    jobs = []
    for job in _list_of_maps(
        as_map(as_map(runtime_spec.get("template")).get("spec")).get("replicatedJobs"),
        f"{where} runtime {ref.get('name')} spec.template.spec.replicatedJobs",
    ):
        template = as_map(job.get("template"))
        ancestor = as_map(as_map(template.get("metadata")).get("labels")).get(TRAINER_ANCESTOR)
        if ancestor is None:
            jobs.append(job)
            continue
        job_spec = dict(as_map(template.get("spec")))
        if ancestor == "trainer":
            job_spec["parallelism"] = job_spec["completions"] = nodes
            pod = as_map(job_spec.get("template"))
            pod_spec = dict(as_map(pod.get("spec")))
            if per_node.get("limits") or per_node.get("requests"):
                pod_spec["containers"] = [
                    {**c, "resources": per_node} if as_map(c).get("name") == "node" else c
                    for c in pod_spec.get("containers") or []
                ]
            job_spec["template"] = {**pod, "spec": pod_spec}
        jobs.append({**job, "replicas": 1, "template": {**template, "spec": job_spec}})
    found, notes = jobset({"spec": {"replicatedJobs": jobs}}, name, namespace, where)
    return [dataclasses.replace(w, kind="TrainJob") for w in found], notes


# (API group, kind) -> how its pods are counted
CRD_EXPANDERS: dict[tuple[str, str], Expander] = {
    ("batch.volcano.sh", "Job"): volcano_job,
    **{("kubeflow.org", kind): kubeflow_job for kind in KUBEFLOW_REPLICA_SPECS},
    ("jobset.x-k8s.io", "JobSet"): jobset,
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): leader_worker_set,
    ("sparkoperator.k8s.io", "SparkApplication"): spark_application,
}

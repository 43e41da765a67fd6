"""`gibbous estimate` end to end: files in, table or JSON out, exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gibbous.cli import main
from gibbous.core.planning.estimate import expand_workloads
from gibbous.core.podmodel.pods import pod_requests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(["estimate", *argv], stdout=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def run_json(*argv: str, stdin: str = "") -> tuple[int, dict[str, Any]]:
    code, text = run(*argv, "--output", "json", stdin=stdin)
    return code, json.loads(text)


@pytest.mark.parametrize(
    ("cloud", "head", "worker", "total"),
    [
        # P04's baseline rows (Tables 1, 3, 4): head, its $/hr, worker, its $/hr, total.
        ("aws", ("r5a.xlarge", 0.2260), ("g6.8xlarge", 2.0144), 4.2548),
        ("gcp", ("e2-highmem-4", 0.1808), ("g2-standard-32", 1.7343), 3.6494),
        ("azure", ("Standard_E4as_v5", 0.2260), ("Standard_NV36ads_A10_v5", 3.2000), 6.6260),
    ],
)
def test_llm_serving_example_matches_the_published_estimates(
    cloud: str, head: tuple[str, float], worker: tuple[str, float], total: float
) -> None:
    (head_type, head_price), (worker_type, worker_price) = head, worker
    code, report = run_json(str(EXAMPLES / "llm-serving-rayservice.yaml"), "--cloud", cloud)
    assert code == 0
    workloads = {w["name"]: w for w in report["workloads"]}
    assert workloads["llm-model-serve/head"]["nodes"][0]["instanceType"] == head_type
    assert workloads["llm-model-serve/head"]["nodes"][0]["pricePerHour"] == pytest.approx(
        head_price, abs=1e-4
    )
    assert workloads["llm-model-serve/gpu-group"]["nodes"] == [
        {
            "instanceType": worker_type,
            "priceCategory": "on-demand",
            "pricePerHour": pytest.approx(worker_price, abs=1e-4),
            "count": 2,
            "shared": False,
        }
    ]
    assert head_price + 2 * worker_price == pytest.approx(total, abs=1e-4)  # the post adds up
    assert report["totalCostPerHour"] == pytest.approx(total, abs=1e-4)
    assert report["totalCostPerWeek"] == pytest.approx(total * 168, abs=0.01)


def test_time_slicing_example() -> None:
    config = str(EXAMPLES / "gpu-time-slicing-config.yaml")
    code, text = run(str(EXAMPLES / "gpu-time-slicing.yaml"), "--config", config)
    assert code == 0
    assert "g4dn.xlarge" in text and "$0.5260/hr" in text
    code, report = run_json(
        str(EXAMPLES / "gpu-time-slicing.yaml"),
        "--config",
        config,
        "--set",
        "nvidiaGPUTimeSlices=1",
        "--set",
        "binPackingNodeTypeRegexp=^([^g]|g($|[^3])).*$",
    )
    assert report["nodes"][0]["instanceType"] == "g4dn.12xlarge"
    assert report["totalCostPerHour"] == 3.912


def test_spot_rayjob_example_on_gke() -> None:
    code, report = run_json(str(EXAMPLES / "spot-offline-inference-rayjob.yaml"), "--cloud", "gcp")
    assert code == 0
    head = next(w for w in report["workloads"] if w["name"] == "image-classifier/head")
    assert head["nodes"][0]["instanceType"] == "n1-standard-32+t4x2"
    assert head["nodes"][0]["priceCategory"] == "spot"
    assert head["nodes"][0]["pricePerHour"] == 1.11


def test_mixed_example_table_and_notes() -> None:
    code, text = run(str(EXAMPLES / "bin-pack-and-bin-select.yaml"))
    assert code == 0
    assert "bin-pack" in text and "bin-select" in text
    assert "DaemonSet node-exporter): skipped" in text
    assert "Cluster total:" in text


def test_json_schema_is_stable() -> None:
    _, report = run_json(str(EXAMPLES / "bin-pack-and-bin-select.yaml"))
    assert set(report) == {
        "schemaVersion",
        "cloud",
        "region",
        "catalog",
        "workloads",
        "nodes",
        "nodeCount",
        "totalCostPerHour",
        "totalCostPerWeek",
        "unsatisfiable",
        "notes",
    }
    assert report["schemaVersion"] == 1
    assert set(report["workloads"][0]) == {
        "name",
        "namespace",
        "kind",
        "pods",
        "placement",
        "costPerHour",
        "nodes",
        "unsatisfiable",
        "warnings",
    }
    assert set(report["nodes"][0]) == {
        "instanceType",
        "priceCategory",
        "pricePerHour",
        "placement",
        "gpus",
        "pods",
    }
    attributed = sum(w["costPerHour"] for w in report["workloads"])
    assert attributed == pytest.approx(report["totalCostPerHour"], abs=1e-3)


UNSATISFIABLE = """
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  labels: {elotl-luna: "true"}
  annotations:
    node.elotl.co/instance-gpu-skus: "T4,P4"
    node.elotl.co/instance-max-cost: "4.75"
spec:
  containers:
  - name: t
    image: x
    resources:
      requests: {cpu: "54", memory: 54Gi}
      limits: {nvidia.com/gpu: 4}
"""


def test_unsatisfiable_pods_exit_3_with_the_excluding_constraint() -> None:
    code, text = run("-", "--cloud", "aws", stdin=UNSATISFIABLE)
    assert code == 3
    assert "Unsatisfiable pods (1):" in text
    assert "no P4/T4 type with >= 54 CPU, 54Gi memory, 4 nvidia.com/gpu under $4.75/hr" in text


def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(UNSATISFIABLE.replace('"4.75"', '"cheap"'))
    assert run(str(bad))[0] == 2
    err = capsys.readouterr().err
    assert 'node.elotl.co/instance-max-cost: invalid value "cheap"' in err
    assert "Pod default/trainer" in err
    assert run(str(tmp_path / "missing.yaml"))[0] == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("kind: [unclosed")
    assert run(str(tmp_path / "broken.yaml"))[0] == 2
    assert run(str(bad), "--set", "scaleUpTimout=1m")[0] == 2
    assert "did you mean 'scaleUpTimeout'" in capsys.readouterr().err


def test_user_catalog_replaces_the_builtin(tmp_path: Path) -> None:
    catalog = tmp_path / "cat.csv"
    catalog.write_text(
        "cloud,region,instance_type,vcpu,memory_gib,gpu_count,gpu_sku,arch,on_demand_usd_per_hour,spot_usd_per_hour\n"
        "aws,us-west-2,tiny.box,4,16,0,,amd64,0.05,0.01\n"
    )
    _, report = run_json(str(EXAMPLES / "bin-pack-and-bin-select.yaml"), "--catalog", str(catalog))
    assert {n["instanceType"] for n in report["nodes"]} <= {"tiny.box"}
    assert report["catalog"] == str(catalog)
    catalog.write_text("cloud,region\n")
    assert run(str(EXAMPLES / "bin-pack-and-bin-select.yaml"), "--catalog", str(catalog))[0] == 2


def test_unknown_kinds_and_lists_and_jobs() -> None:
    manifest = """
apiVersion: v1
kind: List
items:
- {apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly}
  spec:
    schedule: "0 1 * * *"
    jobTemplate:
      spec:
        parallelism: 2
        template:
          spec:
            containers: [{name: c, image: x, resources: {requests: {cpu: 100m}}}]
"""
    code, report = run_json("-", stdin=manifest)
    assert code == 0
    assert report["workloads"][0]["pods"] == 2
    widget = [note for note in report["notes"] if "example.com/v1 Widget" in note]
    assert widget and "is not counted" in widget[0] and "creates no pods" not in widget[0]
    assert any("lack the label elotl-luna=true" in note for note in report["notes"])


def test_console_script_help_is_complete() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gibbous", "estimate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for word in (
        "--cloud",
        "--region",
        "--catalog",
        "--config",
        "--set",
        "--output",
        "binSelectPodCpuThreshold",
        "Exit status",
    ):
        assert word in result.stdout


def test_runtime_class_overhead_counts_as_the_scheduler_counts_it() -> None:
    # The Kubernetes documentation's pod-overhead example (kata-fc, 250m/120Mi) with a
    # 2 CPU/200Mi pod: the RuntimeClass admission plugin sets spec.overhead and
    # kube-scheduler adds it, so the pod needs 2250m/320Mi (scheduling-fidelity-facts §2.3).
    manifest = """
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: kata-fc}
handler: kata-fc
overhead: {podFixed: {memory: 120Mi, cpu: 250m}}
---
apiVersion: v1
kind: Pod
metadata: {name: test-pod, labels: {elotl-luna: "true"}}
spec:
  runtimeClassName: kata-fc
  containers:
  - {name: busybox-ctr, image: busybox, resources: {limits: {cpu: 500m, memory: 100Mi}}}
  - {name: nginx-ctr, image: nginx, resources: {limits: {cpu: 1500m, memory: 100Mi}}}
"""
    documents = list(yaml.safe_load_all(manifest))
    (workload,), notes = expand_workloads(documents)
    requests = pod_requests(workload.template)
    assert (requests.cpu_millis, requests.memory_bytes) == (2250, 320 * 2**20)
    unknown = manifest.split("---", 1)[1].replace("kata-fc", "gvisor")
    (plain,), notes = expand_workloads(list(yaml.safe_load_all(unknown)))
    assert pod_requests(plain.template).cpu_millis == 2000
    assert any("RuntimeClass 'gvisor' is not in the input" in note for note in notes)


def test_a_trailing_tab_in_a_scalar_is_read_as_kubectl_reads_it() -> None:
    manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: tabbed}\nspec:\n  containers:\n  - name: c\t\n    image: x\n"
    code, report = run_json("-", stdin=manifest)
    assert code == 0 and report["workloads"][0]["name"] == "tabbed"


def test_nothing_to_estimate_is_not_success(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    code, text = run("-", stdin=manifest)
    assert code == 4
    assert "Widget" in text  # the note says what was skipped
    assert "nothing was estimated" in capsys.readouterr().err


WORKLOAD_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workloads"


def test_a_volcano_job_beside_other_files_is_estimated_not_refused() -> None:
    # Before, the batch.volcano.sh Job read as a batch/v1 Job: "missing pod template", exit 2.
    code, report = run_json(
        str(WORKLOAD_FIXTURES / "volcano-tf-dist-mnist.yaml"),
        str(WORKLOAD_FIXTURES / "lws-multi-template.yaml"),
    )
    assert code == 0
    pods = {w["name"]: w["pods"] for w in report["workloads"]}
    assert pods == {
        "tensorflow-dist-mnist/ps": 1,
        "tensorflow-dist-mnist/worker": 2,
        "leaderworkerset-multi-template/leader": 3,
        "leaderworkerset-multi-template/worker": 9,
    }


def test_same_names_and_generate_name_are_reported_apart(tmp_path: Path) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n"
        "  containers: [{name: c, image: x, resources: {requests: {cpu: '%s'}}}]\n"
    )
    (tmp_path / "a.yaml").write_text(pod % "1")
    (tmp_path / "b.yaml").write_text(
        pod % "2" + "---\n" + (pod % "3").replace("name: web", "generateName: web-")
    )
    code, report = run_json(str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert code == 0
    names = [w["name"] for w in report["workloads"]]
    assert names == [
        f"web@{tmp_path / 'a.yaml'}:1",
        f"web@{tmp_path / 'b.yaml'}:1",
        "web-<generated>",
    ]
    # Each keeps its own pod: three pods in all, none merged by a shared name.
    assert sum(len(n["pods"]) for n in report["nodes"]) == 3


def test_unsupported_needs_exit_5_apart_from_unsatisfiable() -> None:
    tpu = """
apiVersion: v1
kind: Pod
metadata: {name: tpu, labels: {elotl-luna: "true"}}
spec:
  containers: [{name: c, image: x, resources: {limits: {google.com/tpu: 4}}}]
"""
    code, report = run_json("-", "--cloud", "gcp", stdin=tpu)
    assert code == 5
    assert report["unsatisfiable"][0]["unsupported"] is True
    code, text = run("-", "--cloud", "gcp", stdin=tpu)
    assert "Unsupported pods (1)" in text and "Unsatisfiable pods" not in text
    # With one truly unsatisfiable pod beside it, the run exits 3.
    code, _ = run("-", "--cloud", "aws", stdin=tpu + "---\n" + UNSATISFIABLE)
    assert code == 3


def test_a_pod_the_api_server_refuses_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Kubernetes' own pod-with-node-affinity.yaml at one commit: the required node affinity
    # written as a list. Before, the field was read as absent and a node was bought.
    code, _ = run(str(WORKLOAD_FIXTURES / "k8s-pod-with-node-affinity-malformed.yaml"))
    assert code == 2
    err = capsys.readouterr().err
    assert "Pod default/with-node-affinity" in err
    assert (
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: "
        "expected an object (NodeSelector), got a list"
    ) in err


def reason_of(manifest: str, cloud: str) -> tuple[int, str]:
    code, report = run_json("-", "--cloud", cloud, stdin=manifest)
    (entry,) = report["unsatisfiable"]
    return code, str(entry["reason"])


def gpu_pod(selector: dict[str, str], gpus: int = 1, cpu: str = "8", **requests: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"elotl-luna": "true"}},
            "spec": {
                "nodeSelector": selector,
                "containers": [
                    {
                        "name": "c",
                        "image": "x",
                        "resources": {
                            "requests": {"cpu": cpu, "memory": "16Gi", **requests},
                            "limits": {"nvidia.com/gpu": gpus} if gpus else {},
                        },
                    }
                ],
            },
        }
    )


def test_a_gpu_family_the_catalog_lacks_is_named_as_the_catalogs_gap() -> None:
    # GKE sells A4 (B200) in us-central1 (cloud.google.com/compute/docs/gpus), but the
    # built-in GCP catalog has no row for it (no public regional price was found): the
    # reason says so, not "no offer satisfies".
    code, reason = reason_of(gpu_pod({"cloud.google.com/gke-accelerator": "nvidia-b200"}), "gcp")
    assert code == 3
    assert "no type meets cloud.google.com/gke-accelerator In nvidia-b200" in reason
    assert "the catalog has no nvidia-b200 types" in reason
    assert "nvidia-tesla-t4" in reason  # what it has instead (GKE's T4 accelerator name)


def test_a_zone_of_another_region_is_named() -> None:
    # us-east1-b is a GCP zone, of us-east1: not one of us-central1's (a, b, c, f).
    code, reason = reason_of(gpu_pod({"topology.kubernetes.io/zone": "us-east1-b"}), "gcp")
    assert code == 3
    assert "no type meets topology.kubernetes.io/zone In us-east1-b" in reason
    assert "not a zone of gcp us-central1" in reason and "us-central1-f" in reason


def test_a_small_pod_with_an_unmet_selector_names_the_selector_not_the_node_spec() -> None:
    # 500m is a bin-pack pod: its node is the binPackingNode shape, and the selector is
    # what no type meets.
    pod = gpu_pod({"node.kubernetes.io/instance-type": "no-such-type"}, gpus=0, cpu="500m")
    code, reason = reason_of(pod, "aws")
    assert code == 3
    assert "no type meets node.kubernetes.io/instance-type In no-such-type" in reason


def test_hugepages_no_type_lists_are_named() -> None:
    # No built-in catalog lists huge pages (a node has none unless its kubelet reserves
    # them), so it is the catalog's gap, not "none of the N types has room".
    code, reason = reason_of(gpu_pod({}, gpus=0, **{"hugepages-2Mi": "1Gi"}), "aws")
    assert code == 3
    assert "no type in the catalog has hugepages-2Mi allocatable" in reason
    assert "has room" not in reason


BIG_MEMORY_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: bigmem
  labels: {elotl-luna: "true"}
spec:
  containers:
  - name: main
    image: busybox
    resources:
      requests: {cpu: "4", memory: 1000Gi}
"""

# Issue #30: OCI's built-in catalog once had no standard shape holding 1000Gi and the pod
# got BM.GPU4.8 (8 A100, $24.40/hr). With the bare-metal standard shapes (OCI "Compute
# Shapes"): BM.Standard3.64 and BM.Standard.A1.160 have 1024 GB, too little once the
# node's reservations are taken; BM.Standard.E4.128 (128 OCPUs = 256 vCPU, 2048 GB) at
# 128 x $0.025 + 2048 x $0.0015 = $6.272/hr is the cheapest that fits, before
# BM.Standard.E5.192 ($10.368). Still bare metal with 256 vCPU for 4 (>= 4 x 4, spare >= 32).
BIG_MEMORY_WARNING = (
    "BM.Standard.E4.128 (bare metal) is far larger than its pods ask: 256 vCPU for 4 CPU requested"
)


def test_the_oci_1000gi_pod_gets_standard_bare_metal_with_a_warning_in_json() -> None:
    code, report = run_json("-", "--cloud", "oci", stdin=BIG_MEMORY_POD)
    assert code == 0
    (workload,) = report["workloads"]
    assert workload["nodes"][0]["instanceType"] == "BM.Standard.E4.128"
    assert workload["nodes"][0]["pricePerHour"] == 6.272
    assert workload["warnings"] == [BIG_MEMORY_WARNING]
    (node,) = report["nodes"]
    assert node["wrongSize"] == {
        "bareMetal": True,
        "excess": [{"resource": "cpu", "capacity": 256, "requested": 4}],
        "message": BIG_MEMORY_WARNING,
    }


def test_the_oci_1000gi_pod_is_warned_of_in_the_table() -> None:
    code, text = run("-", "--cloud", "oci", stdin=BIG_MEMORY_POD)
    assert code == 0
    assert "Wrong-size nodes (1):" in text
    assert f"  default/bigmem: {BIG_MEMORY_WARNING}\n" in text


def test_a_right_sized_estimate_has_no_warnings() -> None:
    _, report = run_json(str(EXAMPLES / "bin-pack-and-bin-select.yaml"))
    assert all(w["warnings"] == [] for w in report["workloads"])
    assert all("wrongSize" not in n for n in report["nodes"])
    _, text = run(str(EXAMPLES / "bin-pack-and-bin-select.yaml"))
    assert "Wrong-size" not in text


def test_a_node_grown_for_ephemeral_storage_says_its_disk() -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: scratch, labels: {elotl-luna: "true"}}
spec:
  containers:
  - name: c
    image: busybox
    resources: {requests: {cpu: "1", memory: 1Gi, ephemeral-storage: 100Gi}}
"""
    # EKS root volume by default 20 GiB (Karpenter's EC2NodeClass default); the kubelet keeps
    # 10% (nodefs.available) and amazon-eks-ami reserves 1 GiB: a D GiB disk allocates
    # D - D/10 - 1 GiB. 113 GiB gives 100.7 >= 100; 112 gives 99.8.
    code, doc = run_json("--cloud", "aws", "-", stdin=manifest)
    assert code == 0
    (node,) = doc["nodes"]
    assert node["diskGiB"] == 113
    code, table = run("--cloud", "aws", "-", stdin=manifest)
    assert (
        "Larger disks (1 node(s)): their pods' ephemeral storage needs more than the "
        "configured 20 GiB" in table
    )
    assert f"  1 x {node['instanceType']}: 113 GiB" in table
    _, plain = run_json("--cloud", "aws", str(EXAMPLES / "llm-serving-rayservice.yaml"))
    assert all("diskGiB" not in n for n in plain["nodes"])

"""`gibbous dev-cluster` as a user runs it, on the current Kubernetes release: one command
brings up the control plane and all of Gibbous; a labelled Deployment is mutated, gets kwok
nodes of the cheapest types and runs; bin-select pods wait behind the provisioning gate
until their node is Ready and are pinned to it; pods of an estimate-only namespace get a
NodeCostEstimate and no node; a native sidecar counts as kube-scheduler counts it;
spot-allowed and GPU pods get their nodes; metrics.k8s.io answers through the API
server; with the webhook down pods are still admitted
and still get capacity; `down` leaves nothing behind."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from gibbous.core import keys
from gibbous.devcluster.binaries import find_binaries
from gibbous.devcluster.controlplane import free_port
from tests.e2e.conftest import eventually, make_namespace
from tests.factories import api_pod

pytestmark = pytest.mark.e2e
ESTIMATES = "estimates"


def gibbous(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gibbous", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("dev") / "cluster"
    up = gibbous(
        "dev-cluster",
        "up",
        "--dir",
        str(directory),
        "--kwok-boot-seconds",
        "1",
        "--set",
        "provisioningGate=true",
        "--set",
        f"estimateOnlyNamespaces={ESTIMATES}",
    )
    assert up.returncode == 0, up.stderr + up.stdout
    assert f"export KUBECONFIG={directory / 'kubeconfig'}" in up.stdout
    assert "scheduling gates need" not in up.stdout  # the current release has them
    yield directory
    gibbous("dev-cluster", "down", "--dir", str(directory))


@pytest.fixture(scope="module")
def dev_api(dev_cluster: Path) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(dev_cluster / "kubeconfig"), client_configuration=configuration
    )
    return client.ApiClient(configuration)


def workload_pod(
    name: str, *, cpu: str, annotations: dict[str, str] | None = None, gpus: int = 0
) -> dict[str, Any]:
    return api_pod(name, cpu=cpu, memory="256Mi", gpus=gpus, annotations=annotations)


def node_labels_of(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    core = client.CoreV1Api(api)
    node_name: str = eventually(
        lambda: core.read_namespaced_pod(name, namespace).spec.node_name,
        timeout_s=90,
        what=f"{name} bound",
    )
    return dict(core.read_node(node_name).metadata.labels)


def test_a_labelled_deployment_is_mutated_gets_nodes_and_runs(dev_api: client.ApiClient) -> None:
    make_namespace(dev_api, "demo")
    apps = client.AppsV1Api(dev_api)
    template = workload_pod("x", cpu="500m")
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    template["metadata"]["labels"]["app"] = "demo"
    apps.create_namespaced_deployment(
        "demo",
        {
            "metadata": {"name": "demo"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "demo"}},
                "template": template,
            },
        },
    )
    core = client.CoreV1Api(dev_api)

    def running() -> list[Any] | None:
        pods = core.list_namespaced_pod("demo", label_selector="app=demo").items
        ok = len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
        return pods if ok else None

    pods = eventually(running, timeout_s=90, what="3 demo pods Running on kwok nodes")
    for pod in pods:
        assert pod.spec.scheduler_name == "gibbous-scheduler"  # set by the webhook
        assert pod.metadata.labels[keys.PLACEMENT] == "bin-pack"
    (node_name,) = {p.spec.node_name for p in pods}  # bin-packed onto one node
    node = core.read_node(node_name)
    assert node.metadata.labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
    # metrics.k8s.io through the aggregation layer: the pods use their requests (no usage
    # annotation), the node the sum of its pods'.
    custom = client.CustomObjectsApi(dev_api)
    usage = custom.get_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", node_name)
    assert usage["usage"]["cpu"] == "1500000000n"
    pods_usage = custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", "demo", "pods")
    assert (
        sorted(c["usage"]["cpu"] for i in pods_usage["items"] for c in i["containers"])
        == ["500000000n"] * 3
    )


def test_the_extender_answers_only_the_schedulers_client_certificate(dev_cluster: Path) -> None:
    state = json.loads((dev_cluster / "state.json").read_text())
    url = state["extender"]
    assert url.startswith("https://")
    pki = dev_cluster / "pki"
    body = b'{"Pod": {}, "NodeNames": []}'
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(url.replace("https://", "http://") + "/filter", body, 5)
    anonymous = ssl.create_default_context(cafile=str(pki / "extender-ca.crt"))
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/filter", body, 5, context=anonymous)
    paired = ssl.create_default_context(cafile=str(pki / "extender-ca.crt"))
    paired.load_cert_chain(str(pki / "extender-client.crt"), str(pki / "extender-client.key"))
    with urllib.request.urlopen(url + "/metrics", timeout=5, context=paired) as reply:
        metrics = reply.read().decode()
    # The Gibbous scheduler has called it over that TLS for the pods of the tests above.
    calls = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("gibbous_extender_requests_total{") and 'verb="filter"' in line
    ]
    assert sum(calls) > 0


def test_bin_select_pods_wait_behind_the_gate_and_are_pinned_to_their_node(
    dev_api: client.ApiClient,
) -> None:
    make_namespace(dev_api, "gated")
    core = client.CoreV1Api(dev_api)
    created = core.create_namespaced_pod("gated", workload_pod("big", cpu="3"))
    assert [g.name for g in created.spec.scheduling_gates or []] == [keys.PROVISIONING_GATE]
    labels = node_labels_of(dev_api, "gated", "big")
    pod = core.read_namespaced_pod("big", "gated")
    assert not pod.spec.scheduling_gates  # lifted by the autoscaler once the node was Ready
    # The nodeSelector was narrowed to the node made for it (allowed only while gated).
    assert pod.spec.node_selector == {keys.HOSTNAME: pod.spec.node_name}
    assert labels[keys.ASSIGNED_POD_UID] == pod.metadata.uid
    eventually(
        lambda: core.read_namespaced_pod("big", "gated").status.phase == "Running",
        what="the released pod Running",
    )


def test_estimate_only_pods_get_a_cost_estimate_and_no_node(
    dev_api: client.ApiClient, dev_cluster: Path
) -> None:
    make_namespace(dev_api, ESTIMATES)
    core = client.CoreV1Api(dev_api)
    created = core.create_namespaced_pod(ESTIMATES, workload_pod("priced", cpu="3"))
    assert keys.COST_ESTIMATE_GATE in [g.name for g in created.spec.scheduling_gates or []]
    selector = f"involvedObject.name=priced,reason={keys.EVENT_NODE_COST_ESTIMATE}"
    events = eventually(
        lambda: core.list_namespaced_event(ESTIMATES, field_selector=selector).items,
        what="the NodeCostEstimate event",
    )
    assert events[0].message.startswith("Estimated cost $")
    assert "estimated node count 1" in events[0].message
    nodes_before = {n.metadata.name for n in core.list_node().items}
    # Several more autoscaler steps (counted on its metrics): still nothing for this pod.
    steps = autoscaler_steps(dev_cluster)
    eventually(
        lambda: autoscaler_steps(dev_cluster) >= steps + 5, timeout_s=60, what="five more steps"
    )
    pod = core.read_namespaced_pod("priced", ESTIMATES)
    assert pod.spec.node_name is None
    assert keys.COST_ESTIMATE_GATE in [g.name for g in pod.spec.scheduling_gates or []]
    for node in core.list_node().items:
        assert (node.metadata.labels or {}).get(keys.ASSIGNED_POD_UID) != pod.metadata.uid
    assert {n.metadata.name for n in core.list_node().items} == nodes_before


def test_sidecars_and_pod_level_resources_count_as_kube_scheduler_counts_them(
    dev_api: client.ApiClient,
) -> None:
    # A restartable init container runs beside the app for the pod's life: kube-scheduler
    # adds its requests to the app's (1.5 + 1.5 = 3 CPU). Pod-level requests (1.34+)
    # replace the containers' (1 -> 3 CPU). Sized by the containers alone, these pods would
    # get a 2-vCPU node the scheduler then refuses; sized right, they get what a plain
    # 3-CPU pod gets, and the real scheduler binds them there.
    make_namespace(dev_api, "sidecars")
    core = client.CoreV1Api(dev_api)
    with_sidecar = workload_pod("with-sidecar", cpu="1500m")
    with_sidecar["spec"]["initContainers"] = [
        {
            "name": "proxy",
            "image": "registry.k8s.io/pause:3.9",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "1500m", "memory": "256Mi"}},
        }
    ]
    with_sidecar["spec"]["containers"][0]["resources"]["requests"]["memory"] = "256Mi"
    plain = workload_pod("plain-3", cpu="3")
    plain["spec"]["containers"][0]["resources"]["requests"]["memory"] = "512Mi"
    pod_level = workload_pod("pod-level", cpu="1")
    pod_level["spec"]["containers"][0]["resources"]["requests"]["memory"] = "512Mi"
    pod_level["spec"]["resources"] = {"requests": {"cpu": "3", "memory": "512Mi"}}
    for body in (with_sidecar, plain, pod_level):
        core.create_namespaced_pod("sidecars", body)
    sidecar_node = node_labels_of(dev_api, "sidecars", "with-sidecar")
    plain_node = node_labels_of(dev_api, "sidecars", "plain-3")
    pod_level_node = node_labels_of(dev_api, "sidecars", "pod-level")
    assert sidecar_node[keys.INSTANCE_TYPE] == plain_node[keys.INSTANCE_TYPE]
    assert pod_level_node[keys.INSTANCE_TYPE] == plain_node[keys.INSTANCE_TYPE]
    assert sidecar_node[keys.PLACEMENT] == pod_level_node[keys.PLACEMENT] == "bin-select"


def test_spot_and_gpu_pods_get_their_nodes(dev_api: client.ApiClient) -> None:
    make_namespace(dev_api, "kinds")
    core = client.CoreV1Api(dev_api)
    core.create_namespaced_pod(
        "kinds", workload_pod("spot", cpu="3", annotations={keys.INSTANCE_OFFERINGS: "spot"})
    )
    core.create_namespaced_pod("kinds", workload_pod("gpu", cpu="1", gpus=1))
    spot = node_labels_of(dev_api, "kinds", "spot")
    assert spot[keys.CAPACITY_TYPE] == "spot"
    tolerations = core.read_namespaced_pod("spot", "kinds").spec.tolerations or []
    assert any(t.key == keys.SPOT_TAINT_KEY for t in tolerations)  # added by the webhook
    gpu = node_labels_of(dev_api, "kinds", "gpu")
    assert int(gpu[keys.GPU_COUNT]) >= 1


def autoscaler_metric(dev_cluster: Path, series: str) -> float:
    state = json.loads((dev_cluster / "state.json").read_text())
    port = state["ports"]["gibbous-autoscaler"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as reply:
        text: str = reply.read().decode()
    (line,) = [m for m in text.splitlines() if m.startswith(f"{series} ")]
    return float(line.split()[1])


def autoscaler_decisions(dev_cluster: Path) -> float:
    return autoscaler_metric(dev_cluster, "gibbous_autoscaler_decisions_total")


def autoscaler_steps(dev_cluster: Path) -> float:
    """Provisioning steps the autoscaler ran (its step-duration histogram's count)."""
    series = 'gibbous_autoscaler_step_duration_seconds_count{part="provisioning"}'
    return autoscaler_metric(dev_cluster, series)


def deployment(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
    template = workload_pod("x", cpu="500m")
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    template["metadata"]["labels"]["app"] = name
    template["spec"].update(spec)
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }


def running_pods(api: client.ApiClient, namespace: str, app: str, count: int) -> list[Any]:
    core = client.CoreV1Api(api)

    def running() -> list[Any] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
        ok = len(pods) == count and all(p.status.phase == "Running" for p in pods)
        return pods if ok else None

    return eventually(running, timeout_s=120, what=f"{count} {app} pods Running")


def test_required_self_anti_affinity_gets_a_node_per_replica_in_one_decision(
    dev_cluster: Path, dev_api: client.ApiClient
) -> None:
    # Three small bin-pack pods fit one node; required anti-affinity on their own label
    # over kubernetes.io/hostname makes kube-scheduler need three. The zone selector keeps
    # them off the nodes earlier tests made (all in the first zone).
    make_namespace(dev_api, "anti")
    before = autoscaler_decisions(dev_cluster)
    body = deployment(
        "web",
        3,
        {
            "nodeSelector": {keys.ZONE: "us-west-2d"},
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"app": "web"}},
                            "topologyKey": keys.HOSTNAME,
                        }
                    ]
                }
            },
        },
    )
    client.AppsV1Api(dev_api).create_namespaced_deployment("anti", body)
    pods = running_pods(dev_api, "anti", "web", 3)
    assert len({p.spec.node_name for p in pods}) == 3
    assert autoscaler_decisions(dev_cluster) - before == 1


def test_a_zone_spread_deployment_gets_nodes_in_the_zones_it_needs(
    dev_api: client.ApiClient,
) -> None:
    # GKE's whereami shape: 3 replicas, maxSkew 1 over zones, DoNotSchedule, here with
    # minDomains 3. Earlier tests left nodes with room in two zones; kube-scheduler counts
    # only zones that have nodes, so with two it takes the minimum as 0 and a third pod
    # fits neither (1 + 1 - 0 > 1): it needs a node in a third zone, which Gibbous must
    # put there rather than wherever the provider likes.
    make_namespace(dev_api, "spread")
    body = deployment(
        "whereami",
        3,
        {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": keys.ZONE,
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "whereami"}},
                    "minDomains": 3,
                }
            ]
        },
    )
    client.AppsV1Api(dev_api).create_namespaced_deployment("spread", body)
    pods = running_pods(dev_api, "spread", "whereami", 3)
    core = client.CoreV1Api(dev_api)
    zones = {core.read_node(p.spec.node_name).metadata.labels[keys.ZONE] for p in pods}
    assert len(zones) == 3


def test_an_invalid_annotation_is_rejected_with_a_readable_message(
    dev_api: client.ApiClient,
) -> None:
    make_namespace(dev_api, "invalid")
    core = client.CoreV1Api(dev_api)
    with pytest.raises(client.ApiException) as raised:
        core.create_namespaced_pod(
            "invalid", workload_pod("bad", cpu="1", annotations={keys.INSTANCE_MAX_COST: "cheap"})
        )
    assert raised.value.status in (400, 403, 422)
    assert keys.INSTANCE_MAX_COST in str(raised.value.body)


def restart_gibbous_scheduler(directory: Path) -> subprocess.Popen[bytes]:
    """Start the Gibbous scheduler again from the configuration `up` wrote (as a
    Deployment would restart it); the caller stops it."""
    binaries = find_binaries(build=False)
    with (directory / "kube-scheduler-restarted.log").open("ab") as log:
        return subprocess.Popen(
            [
                str(binaries.scheduler),
                f"--config={directory / 'scheduler-gibbous-scheduler.yaml'}",
                f"--authentication-kubeconfig={directory / 'kubeconfig'}",
                f"--authorization-kubeconfig={directory / 'kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_a_stopped_gibbous_scheduler_never_blocks_pods(
    dev_cluster: Path, dev_api: client.ApiClient
) -> None:
    """Issue #18: with the Gibbous scheduler killed, new managed pods go to the default
    scheduler and get capacity; a pod already sent to it is told why it waits; once the
    scheduler runs again, new pods are sent to it again."""
    state = json.loads((dev_cluster / "state.json").read_text())
    make_namespace(dev_api, "routing")
    core = client.CoreV1Api(dev_api)
    os.kill(state["pids"]["kube-scheduler-gibbous-scheduler"], signal.SIGKILL)
    # Sent to the scheduler before its Lease went stale: it waits on a scheduler that is gone.
    stuck = core.create_namespaced_pod("routing", workload_pod("stuck", cpu="500m"))
    assert stuck.spec.scheduler_name == "gibbous-scheduler"

    def scheduler_of_new_pod(name: str) -> str:
        created = core.create_namespaced_pod("routing", workload_pod(name, cpu="500m"))
        scheduler: str = created.spec.scheduler_name
        return scheduler

    def routed() -> str:
        context = ssl.create_default_context(cafile=str(dev_cluster / "webhook-tls" / "ca.crt"))
        with urllib.request.urlopen(f"{state['webhook']}/metrics", context=context) as reply:
            text: str = reply.read().decode()
        (line,) = [
            m for m in text.splitlines() if m.startswith("gibbous_webhook_scheduler_routed ")
        ]
        return line.split()[1]

    # The Lease goes stale after 15 s + 10 s margin; the webhook looks every 5 s.
    eventually(lambda: routed() == "0.0", timeout_s=60, what="the webhook to stop routing")
    assert scheduler_of_new_pod("rerouted") == "default-scheduler"
    labels = node_labels_of(dev_api, "routing", "rerouted")  # capacity all the same
    assert labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
    selector = f"involvedObject.name=stuck,reason={keys.EVENT_SCHEDULER_STOPPED}"
    (event,) = eventually(
        lambda: core.list_namespaced_event("routing", field_selector=selector).items,
        timeout_s=90,
        what="the event on the stuck pod",
    )
    assert "waiting for scheduler 'gibbous-scheduler', which is not running" in event.message
    scheduler = restart_gibbous_scheduler(dev_cluster)
    try:
        eventually(lambda: routed() == "1.0", timeout_s=60, what="routing on again")
        assert scheduler_of_new_pod("routed-again") == "gibbous-scheduler"
        node_labels_of(dev_api, "routing", "stuck")  # the restarted scheduler places it too
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=15)


def test_with_the_webhook_down_pods_are_admitted_and_still_get_capacity(
    dev_cluster: Path, dev_api: client.ApiClient
) -> None:
    state = json.loads((dev_cluster / "state.json").read_text())
    os.kill(state["pids"]["gibbous-webhook"], signal.SIGKILL)
    status = gibbous("dev-cluster", "status", "--dir", str(dev_cluster))
    assert (
        status.returncode == 1 and "gibbous-webhook" in status.stdout and "STOPPED" in status.stdout
    )
    make_namespace(dev_api, "nohook")
    core = client.CoreV1Api(dev_api)
    core.create_namespaced_pod("nohook", workload_pod("plain", cpu="3"))
    labels = node_labels_of(dev_api, "nohook", "plain")
    assert labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE
    assert core.read_namespaced_pod("plain", "nohook").spec.scheduler_name == "default-scheduler"


def test_down_stops_everything_and_removes_its_state(tmp_path: Path, dev_cluster: Path) -> None:
    state = json.loads((dev_cluster / "state.json").read_text())
    down = gibbous("dev-cluster", "down", "--dir", str(dev_cluster))
    assert down.returncode == 0 and not dev_cluster.exists()
    for pid in state["pids"].values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert gibbous("dev-cluster", "status", "--dir", str(dev_cluster)).returncode == 3


def test_the_aws_dev_cluster_provisions_ec2_nodes_that_join_from_their_user_data(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`up --cloud aws`: the real aws provider against the EC2 emulator; the node agent
    registers each instance's Node from its user data alone."""
    directory = tmp_path_factory.mktemp("dev-aws") / "cluster"
    up = gibbous(
        "dev-cluster", "up", "--cloud", "aws", "--dir", str(directory), "--kwok-boot-seconds", "1"
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "aws provider; EC2/EKS emulator at http://127.0.0.1:" in up.stdout
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(directory / "kubeconfig"), client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        make_namespace(api, "aws-demo")
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("aws-demo", workload_pod("web", cpu="500m"))
        labels = node_labels_of(api, "aws-demo", "web")
        node = core.read_node(core.read_namespaced_pod("web", "aws-demo").spec.node_name)
        assert node.spec.provider_id.startswith("aws:///us-west-2")
        assert labels[keys.CREATED_BY] == keys.CREATED_BY_VALUE  # from the user data
        assert labels[keys.PLACEMENT] == "bin-pack"
        # The autoscaler's catalog came from the emulator's DescribeInstanceTypes,
        # offerings and Price List API (kept with its date), not from the built-in file.
        kept = json.loads((directory / "catalog-cache" / "aws-us-west-2.json").read_text())
        assert kept["region"] == "us-west-2"
        assert kept["fetchedAt"] > 0
        assert {"m5.large", "g5.xlarge"} <= {row["name"] for row in kept["types"]}
    finally:
        gibbous("dev-cluster", "down", "--dir", str(directory))


def test_the_gcp_dev_cluster_provisions_gke_node_pools(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`up --cloud gcp`: the real gcp provider against the GKE emulator; P17's
    time-shared pods (GKE's selectors, nvidiaGPUTimeSlices=2, placeNodeSelector) share one
    N1 + T4 node that GKE's node agent registered from its pool, chosen from the catalog the
    autoscaler built from the emulator's Compute and Billing Catalog APIs."""
    directory = tmp_path_factory.mktemp("dev-gcp") / "cluster"
    up = gibbous(
        "dev-cluster",
        "up",
        "--cloud",
        "gcp",
        "--dir",
        str(directory),
        "--kwok-boot-seconds",
        "1",
        "--set",
        "nvidiaGPUTimeSlices=2",
        "--set",
        "placeNodeSelector=true",
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "gcp provider; GKE emulator at http://127.0.0.1:" in up.stdout
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(directory / "kubeconfig"), client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        make_namespace(api, "gcp-demo")
        core = client.CoreV1Api(api)
        for name in ("ts-0", "ts-1"):
            body = workload_pod(name, cpu="500m", gpus=1)
            body["spec"]["nodeSelector"] = {
                keys.GKE_GPU_SHARING_STRATEGY: "time-sharing",
                keys.GKE_MAX_SHARED_CLIENTS: "2",
            }
            core.create_namespaced_pod("gcp-demo", body)
        labels = node_labels_of(api, "gcp-demo", "ts-0")
        node_labels_of(api, "gcp-demo", "ts-1")  # bound too
        nodes = {core.read_namespaced_pod(n, "gcp-demo").spec.node_name for n in ("ts-0", "ts-1")}
        assert len(nodes) == 1
        assert labels["cloud.google.com/gke-nodepool"].startswith("gbs-")
        # The cheapest N1 + T4 Compute Engine offers (a T4 attaches to an N1 of up to 48
        # vCPUs), no longer the built-in file's n1-standard-4 + T4 ($0.54): n1-highcpu-2,
        # 2 vCPUs x $0.031611 + 1.8 GiB x $0.004237 + 1 T4 x $0.35 (us-central1 list rates)
        assert labels[keys.INSTANCE_TYPE] == "n1-highcpu-2"
        assert labels[keys.PRICE_PER_HOUR] == "0.4208"
        # The autoscaler's catalog came from the emulator's machineTypes,
        # acceleratorTypes and Billing Catalog SKUs (kept with its date), not from the
        # built-in file.
        kept = json.loads((directory / "catalog-cache" / "gcp-us-central1.json").read_text())
        assert kept["region"] == "us-central1"
        assert kept["fetchedAt"] > 0
        assert {"n1-standard-4+t4x1", "e2-standard-4"} <= {row["name"] for row in kept["types"]}
    finally:
        gibbous("dev-cluster", "down", "--dir", str(directory))


def test_the_azure_dev_cluster_provisions_aks_agent_pools(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`up --cloud azure`: the real azure provider against the AKS emulator over HTTPS; a
    pod gets a VM of an agent pool Gibbous made, registered as AKS would."""
    directory = tmp_path_factory.mktemp("dev-azure") / "cluster"
    up = gibbous(
        "dev-cluster", "up", "--cloud", "azure", "--dir", str(directory), "--kwok-boot-seconds", "1"
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "azure provider; AKS emulator at https://127.0.0.1:" in up.stdout
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(directory / "kubeconfig"), client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        make_namespace(api, "azure-demo")
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("azure-demo", workload_pod("web", cpu="500m"))
        labels = node_labels_of(api, "azure-demo", "web")
        node = core.read_node(core.read_namespaced_pod("web", "azure-demo").spec.node_name)
        assert node.spec.provider_id.startswith("azure:///subscriptions/")
        assert labels["kubernetes.azure.com/agentpool"].startswith("gbs")
        assert labels[keys.PLACEMENT] == "bin-pack"
        # The autoscaler's catalog came from the emulator's Resource SKUs and Retail
        # Prices API (kept with its date), not from the built-in file.
        kept = json.loads((directory / "catalog-cache" / "azure-eastus.json").read_text())
        assert kept["region"] == "eastus"
        assert kept["fetchedAt"] > 0
        assert {"Standard_D8s_v5", "Standard_NC4as_T4_v3"} <= {r["name"] for r in kept["types"]}
    finally:
        gibbous("dev-cluster", "down", "--dir", str(directory))


def test_the_oci_dev_cluster_provisions_oke_node_pools(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`up --cloud oci`: the real oci provider, its requests signed, against the OKE
    emulator; a pod gets a node of a pool Gibbous made, registered as OKE would."""
    directory = tmp_path_factory.mktemp("dev-oci") / "cluster"
    up = gibbous(
        "dev-cluster", "up", "--cloud", "oci", "--dir", str(directory), "--kwok-boot-seconds", "1"
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "oci provider; OKE emulator at http://127.0.0.1:" in up.stdout
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(directory / "kubeconfig"), client_configuration=configuration
        )
        api = client.ApiClient(configuration)
        make_namespace(api, "oci-demo")
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("oci-demo", workload_pod("web", cpu="500m"))
        labels = node_labels_of(api, "oci-demo", "web")
        node = core.read_node(core.read_namespaced_pod("web", "oci-demo").spec.node_name)
        assert node.spec.provider_id.startswith("ocid1.instance.")
        assert labels["name"].startswith("gbs-")  # OKE's label: the node pool's name
        assert labels[keys.PLACEMENT] == "bin-pack"
        # The catalog came from the emulator's ListShapes and price list, not the built-in
        # file, and was kept with its date.
        live = 'gibbous_catalog_age_seconds{cloud="oci",region="us-ashburn-1",source="api"}'
        assert autoscaler_metric(directory, live) >= 0
        assert (directory / "catalog-cache" / "oci-us-ashburn-1.json").exists()
    finally:
        gibbous("dev-cluster", "down", "--dir", str(directory))

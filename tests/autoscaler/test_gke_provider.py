"""The GKE provider through the real SDKs (REST transport) against the GKE emulator, on a
clock the test moves; and the error mapping on recorded GKE and Compute error bodies."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions as google_errors
from google.cloud import container_v1

from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InstanceNotFoundError,
    InstanceState,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.gke import (
    GkeCloudProvider,
    discover,
    gce_label,
    instance_name,
    sdk_clients,
)
from gibbous.autoscaler.cloud.gkefailures import classify_api_error, operation_failure
from gibbous.core import keys
from gibbous.core.settings.options.gcp import GcpConfig
from gibbous.devcluster.gcp.agent import driver_installed, pod_capacity
from gibbous.devcluster.gcp.emulator import GkeEmulator
from gibbous.devcluster.gcp.state import Fault
from tests.autoscaler.sdkworld import OPENED, Clock
from tests.factories import catalog


@pytest.fixture
def world() -> Iterator[tuple[GkeEmulator, Clock, str]]:
    clock = Clock()
    emulator = GkeEmulator(clock=clock, operation_s=30.0, create_s=20.0, delete_s=5.0)
    server = emulator.serve()
    yield emulator, clock, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def provider(endpoint: str, clock: Clock, **config: Any) -> GkeCloudProvider:
    container, compute, _ = sdk_clients(endpoint)
    made = discover(
        container=container,
        compute=compute,
        config=GcpConfig(**config),
        cluster_id="dev-cluster",
        region="us-central1",
        project="gibbous-dev",
        catalog=catalog("gcp"),
        clock=clock,
        empty_pool_s=600.0,
    )
    OPENED.append(made)
    return made


def request(
    token: str,
    instance_type: str = "n1-standard-4+t4x1",
    category: str = "on-demand",
    zones: tuple[str, ...] = ("us-central1-b",),
    labels: dict[str, str] | None = None,
) -> LaunchRequest:
    return LaunchRequest(
        token=token,
        cluster_id="dev-cluster",
        instance_type=instance_type,
        category=category,
        zones=zones,
        labels={
            keys.PLACEMENT: "bin-select",
            keys.CATALOG_TYPE: instance_type.replace("+", "--"),
            keys.INSTANCE_TYPE: instance_type.split("+", maxsplit=1)[0],
            keys.ZONE: zones[0] if zones else "",
            **(labels or {}),
        },
        taints=({"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"},)
        if category == "spot"
        else (),
    )


def calls(emulator: GkeEmulator, what: str) -> int:
    return sum(1 for method, path in emulator.requests if method == "POST" and path.endswith(what))


def test_a_node_is_a_pool_once_then_an_instance_of_its_mig(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock, disk_size_gb=150, image_streaming=True)
    first = gke.create(request("t-1", labels={keys.GKE_MAX_SHARED_CLIENTS: "2"}))
    assert first.state is InstanceState.PENDING
    assert first.id == first.node_name == instance_name("t-1")
    (pool,) = emulator.pools.values()
    config = pool.body["config"]
    assert pool.body["initialNodeCount"] == 0 and pool.body["locations"] == ["us-central1-b"]
    assert config["machineType"] == "n1-standard-4" and config["diskSizeGb"] == 150
    assert config["gcfsConfig"] == {"enabled": True}
    accelerator = config["accelerators"][0]
    assert accelerator["acceleratorType"] == "nvidia-tesla-t4"
    assert accelerator["gpuSharingConfig"] == {
        "gpuSharingStrategy": "TIME_SHARING",
        "maxSharedClientsPerGpu": "2",
    }
    # GKE writes its own labels (and the instance-type label is the machine type there):
    # the pool carries only what is not the cloud's.
    assert not any(
        k.startswith(("cloud.google.com/", "node.kubernetes.io/", "topology."))
        for k in config["labels"]
    )
    assert config["labels"][keys.CATALOG_TYPE] == "n1-standard-4--t4x1"
    assert config["resourceLabels"]["gibbous-cluster-id"] == "dev-cluster"
    assert all("/" not in k and "." not in k for k in config["resourceLabels"])
    # While the pool is made, the launch waits; then its instance is asked for and runs.
    assert gke.get(first.id).state is InstanceState.PENDING
    clock.now += 31
    assert gke.get(first.id).state is InstanceState.PENDING
    assert calls(emulator, "/createInstances") == 1
    clock.now += 21
    running = gke.get(first.id)
    assert running.state is InstanceState.RUNNING and running.instance_type == "n1-standard-4+t4x1"
    # The next node of the shape is one createInstances call, no pool operation.
    gke.create(request("t-2", labels={keys.GKE_MAX_SHARED_CLIENTS: "2"}))
    assert calls(emulator, "/nodePools") == 1 and calls(emulator, "/createInstances") == 2


def test_a_burst_of_one_shape_is_one_pool_and_one_instance_call(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock)
    for index in range(40):
        gke.create(
            request(f"burst-{index}", instance_type="e2-standard-4", zones=("us-central1-a",))
        )
    assert calls(emulator, "/nodePools") == 1
    clock.now += 31
    gke.list("dev-cluster")
    assert calls(emulator, "/createInstances") == 1
    clock.now += 21
    listed = gke.list("dev-cluster")
    assert len(listed) == 40 and {i.state for i in listed} == {InstanceState.RUNNING}


def test_a_stock_out_inside_the_mig_is_a_failed_launch_and_delete_undoes_it(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    emulator.faults = [Fault("stockout", accelerator="nvidia-tesla-t4", spot=True)]
    gke = provider(endpoint, clock)
    launched = gke.create(request("spot-1", instance_type="n1-standard-32+t4x2", category="spot"))
    clock.now += 31
    gke.get(launched.id)  # the pool runs: the instance is asked for
    clock.now += 21
    failed = gke.get(launched.id)
    assert failed.failure_kind == "insufficient-capacity"
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in failed.failure_reason
    assert failed.zone == "us-central1-b"
    (pool,) = emulator.pools.values()
    (mig,) = pool.migs.values()
    assert list(mig.instances) == [launched.id]  # the MIG keeps trying, as GCE does
    gke.delete(launched.id)
    clock.now += 6
    emulator.advance()
    assert not mig.instances
    with pytest.raises(InstanceNotFoundError):
        gke.get(launched.id)


def test_a_pool_whose_creation_fails_fails_its_launches_and_is_deleted(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    emulator.faults = [Fault("pool-stockout", machine_type="n1-highmem-32", times=1)]
    gke = provider(endpoint, clock)
    launches = [gke.create(request(f"p-{i}", instance_type="n1-highmem-32+t4x2")) for i in range(2)]
    clock.now += 31
    for launched in launches:
        failed = gke.get(launched.id)
        assert failed.state is InstanceState.TERMINATED
        assert failed.failure_kind == "insufficient-capacity"
        assert "GCE_STOCKOUT" in failed.failure_reason
    (pool,) = emulator.pools.values()
    assert pool.status == "STOPPING"  # GKE kept the failed pool; Gibbous deletes it
    clock.now += 31
    emulator.advance()
    assert not emulator.pools
    for launched in launches:
        gke.delete(launched.id)  # nothing of it is left
    # The next launch of that shape makes the pool again.
    gke.create(request("p-3", instance_type="n1-highmem-32+t4x2"))
    assert calls(emulator, "/nodePools") == 2


def test_quota_refusals_throttling_and_the_concurrent_operation_limit(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock)
    emulator.faults = [Fault("regional-quota", accelerator="nvidia-tesla-t4", times=1)]
    with pytest.raises(QuotaExceededError, match="Insufficient regional quota"):
        gke.create(request("q-1"))
    emulator.faults = [Fault("throttle", times=1)]
    with pytest.raises(ThrottledError):
        gke.create(request("q-2"))
    emulator.faults = []
    # Three shapes' pools are made at once; a fourth waits for one of them (GKE would
    # refuse it with 429 "Too many operations").
    for index, machine in enumerate(("e2-standard-2", "e2-standard-4", "e2-standard-8")):
        gke.create(request(f"shape-{index}", instance_type=machine))
    with pytest.raises(ThrottledError, match="operationLimit"):
        gke.create(request("shape-4", instance_type="e2-standard-16"))
    emulator.operation_limit = 3
    raw = provider(endpoint, clock, operation_limit=10)
    with pytest.raises(ThrottledError, match="Too many operations"):
        raw.create(request("shape-5", instance_type="e2-standard-16"))
    clock.now += 31
    gke.create(request("shape-4", instance_type="e2-standard-16"))


def test_empty_pools_are_deleted_after_the_delay_and_foreign_pools_never(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    container, compute, _ = sdk_clients(endpoint)
    OPENED.extend((container.transport, compute.transport))
    container.create_node_pool(
        parent="projects/gibbous-dev/locations/us-central1/clusters/dev-cluster",
        node_pool=container_v1.NodePool(
            name="operators-pool",
            initial_node_count=0,
            config=container_v1.NodeConfig(machine_type="e2-standard-4"),
        ),
    )
    gke = provider(endpoint, clock)
    launched = gke.create(request("e-1", instance_type="e2-standard-4"))
    clock.now += 31
    gke.get(launched.id)  # the pool runs: the instance is asked for
    clock.now += 21
    assert gke.get(launched.id).state is InstanceState.RUNNING
    gke.delete(launched.id)
    clock.now += 6
    gke.list("dev-cluster")  # empty from now
    clock.now += 599
    gke.list("dev-cluster")
    assert len(emulator.pools) == 2
    clock.now += 2
    gke.list("dev-cluster")
    clock.now += 31
    emulator.advance()
    assert list(emulator.pools) == ["operators-pool"]


def test_a_restarted_provider_finds_its_instances(world: tuple[GkeEmulator, Clock, str]) -> None:
    emulator, clock, endpoint = world
    first = provider(endpoint, clock)
    launched = first.create(request("r-1", instance_type="e2-standard-4"))
    clock.now += 31
    first.get(launched.id)
    again = provider(endpoint, clock)
    (found,) = again.list("dev-cluster")
    assert found.id == launched.id and found.state is InstanceState.PENDING
    assert found.instance_type == "e2-standard-4" and found.category == "on-demand"
    assert found.labels[keys.PLACEMENT] == "bin-select"
    # The same token again is the same instance, not a second one.
    assert first.create(request("r-1", instance_type="e2-standard-4")).id == launched.id
    assert calls(emulator, "/createInstances") == 1


def test_the_emulator_refuses_what_gke_refuses(world: tuple[GkeEmulator, Clock, str]) -> None:
    _, _, endpoint = world
    url = f"{endpoint}/v1/projects/gibbous-dev/locations/us-central1/clusters/dev-cluster/nodePools"

    def post(body: dict[str, Any]) -> tuple[int, str]:
        data = json.dumps(body).encode()
        call = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(call) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode()

    status, text = post({"nodePool": {"name": "p1", "config": {"machineTyp": "e2-standard-4"}}})
    assert status == 400 and "machineTyp" in text
    status, text = post(
        {
            "nodePool": {
                "name": "p1",
                "config": {
                    "machineType": "e2-standard-4",
                    "labels": {"node.kubernetes.io/instance-type": "x"},
                },
            }
        }
    )
    assert status == 200, text  # node.kubernetes.io is a domain the kubelet may label
    status, text = post(
        {
            "nodePool": {
                "name": "p2",
                "config": {
                    "machineType": "e2-standard-4",
                    "labels": {"kubernetes.io/arch": "amd64"},
                },
            }
        }
    )
    assert status == 400 and "reserved" in text
    status, text = post(
        {
            "nodePool": {
                "name": "p3",
                "config": {
                    "machineType": "e2-standard-4",
                    "resourceLabels": {"gibbous.dev/x": "y"},
                },
            }
        }
    )
    assert status == 400 and "resource label" in text
    status, text = post(
        {"nodePool": {"name": "Bad_Name", "config": {"machineType": "e2-standard-4"}}}
    )
    assert status == 400 and "Invalid node pool name" in text


def _recorded(status: int, body: dict[str, Any]) -> Exception:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.request = requests.Request("POST", "https://container.googleapis.com/v1/x").prepare()
    error: Exception = google_errors.from_http_response(response)  # type: ignore[no-untyped-call]
    return error


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Too many operations: cluster hits the concurrent operations quota",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
            ThrottledError,
        ),
        (
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Quota exceeded for quota metric 'Write requests'",
                    "status": "RESOURCE_EXHAUSTED",
                    "errors": [{"reason": "rateLimitExceeded"}],
                }
            },
            ThrottledError,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Cluster is currently creating node pool gbs-1. Please wait and try again once it is done.",
                    "status": "FAILED_PRECONDITION",
                }
            },
            ThrottledError,
        ),
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Insufficient regional quota to satisfy request: resource \"NVIDIA_T4_GPUS\": request requires '1.0' and is short '1.0'.",
                    "status": "PERMISSION_DENIED",
                }
            },
            QuotaExceededError,
        ),
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": 'Required "container.clusters.update" permission(s) for "projects/p/locations/l/clusters/c".',
                    "status": "PERMISSION_DENIED",
                }
            },
            FatalConfigurationError,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Invalid value for field 'nodePool.config.machineType'",
                    "status": "INVALID_ARGUMENT",
                }
            },
            CloudError,
        ),
    ],
)
def test_error_mapping_on_recorded_bodies(
    status: int, body: dict[str, Any], kind: type[Exception]
) -> None:
    error = classify_api_error(_recorded(status, body))
    assert type(error) is kind, error


def test_a_failed_pool_operation_says_why() -> None:
    recorded = {
        "name": "operation-1",
        "operationType": "CREATE_NODE_POOL",
        "status": "DONE",
        "statusMessage": "Try a different location, or try again later: Google Compute Engine does not have enough resources available to fulfill request: us-central1-b. [GCE_STOCKOUT]",
        "error": {"code": 8, "message": "Try a different location ... [GCE_STOCKOUT]"},
        "nodepoolConditions": [
            {
                "code": "GCE_STOCKOUT",
                "message": "Google Compute Engine does not have enough resources",
                "canonicalCode": "RESOURCE_EXHAUSTED",
            }
        ],
    }
    operation = container_v1.Operation.from_json(json.dumps(recorded), ignore_unknown_fields=True)
    assert (operation_failure(operation) or ("",))[0] == "insufficient-capacity"
    recorded["nodepoolConditions"] = [
        {"code": "GCE_QUOTA_EXCEEDED", "message": "Quota 'NVIDIA_T4_GPUS' exceeded"}
    ]
    operation = container_v1.Operation.from_json(json.dumps(recorded), ignore_unknown_fields=True)
    assert (operation_failure(operation) or ("",))[0] == "quota"
    done = container_v1.Operation.from_json(json.dumps({"name": "op", "status": "DONE"}))
    assert operation_failure(done) is None


def test_gce_labels() -> None:
    assert gce_label("gibbous.dev/placement", key=True) == "gibbous_dev_placement"
    assert gce_label("T4") == "t4"
    assert gce_label("9lives", key=True) == "k9lives"


def test_nodes_take_the_clusters_max_pods(world: tuple[GkeEmulator, Clock, str]) -> None:
    emulator, clock, endpoint = world
    emulator.max_pods = 32  # a cluster made with --default-max-pods-per-node 32
    gke = provider(endpoint, clock)
    assert {t.max_pods for t in gke.instance_types()} == {32}
    gke.create(request("pods-1", instance_type="e2-standard-8"))
    clock.now += 31
    (pool,) = list(emulator.pools.values())
    assert pod_capacity(pool.body) == 32  # what the emulated kubelet registers
    assert pool.body["podIpv4CidrSize"] == 26  # GKE: 32 pods a node take a /26


def test_gpus_are_advertised_only_where_gke_installs_the_driver() -> None:
    t4 = {"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": "1"}
    disabled = {**t4, "gpuDriverInstallationConfig": {"gpuDriverVersion": "INSTALLATION_DISABLED"}}
    default = {**t4, "gpuDriverInstallationConfig": {"gpuDriverVersion": "DEFAULT"}}
    assert driver_installed(default, "1.29.4-gke.1043002")
    assert not driver_installed(disabled, "1.37.2-gke.100")
    assert not driver_installed(t4, "1.29.4-gke.1043002")  # unset, before automatic install
    assert driver_installed(t4, "1.31.1-gke.100")


def test_the_provider_asks_gke_not_to_install_the_driver_when_told(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    emulator, clock, endpoint = world
    provider(endpoint, clock, gpu_driver_version="disabled").create(request("no-driver"))
    (pool,) = emulator.pools.values()
    accelerator = pool.body["config"]["accelerators"][0]
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "INSTALLATION_DISABLED"
    assert not driver_installed(accelerator, emulator.version)


def test_read_throttling_is_a_throttled_error(world: tuple[GkeEmulator, Clock, str]) -> None:
    """ "Compute Engine rate quotas": a project over a rate quota gets "a 403 error with the
    reason rateLimitExceeded", and the quota refills "at the start of the next synchronized
    interval" (a minute). That 403 says "Quota exceeded": it is throttling, not the
    account's quota (which would back the machine type off for minutes)."""
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock)
    gke.create(request("r-0", instance_type="e2-standard-8"))
    clock.now += 31
    gke.advance()
    clock.now = (clock.now // 60 + 1) * 60  # the start of a minute
    gke.list("dev-cluster")
    clock.now += 5
    emulator.compute_reads.tokens = 0.0  # this minute's Compute reads are spent
    refused = emulator.reads_refused
    with pytest.raises(ThrottledError) as throttled:
        gke.list("dev-cluster")
    assert not isinstance(throttled.value, QuotaExceededError)
    assert throttled.value.retry_after_s >= 50  # the minute's quota is spent
    assert emulator.reads_refused == refused + 1
    clock.now += 60  # the next minute: the quota is back
    gke.list("dev-cluster")


def test_labels_the_kubelet_may_not_set_stay_off_the_pool(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    """GKE refuses a pool labelled in the kubelet-restricted namespaces (the emulator as
    GKE does, docs/clouds/gke.md): such labels wait for the node to register."""
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock)
    restricted = {"node-role.kubernetes.io/gpu": "", "kubernetes.io/team": "ml"}
    labels = {**restricted, "example.com/team": "ml"}
    made = gke.create(request("role-1", instance_type="e2-standard-8", labels=labels))
    (pool,) = emulator.pools.values()
    assert not set(restricted) & set(pool.body["config"]["labels"])
    assert pool.body["config"]["labels"]["example.com/team"] == "ml"
    clock.now += 31
    gke.advance()
    assert gke.get(made.id).state is not InstanceState.TERMINATED


def test_workload_identity_pools_run_gkes_metadata_server(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    # GKE Workload Identity: a pool with workloadMetadataConfig mode GKE_METADATA runs the
    # metadata server, and its nodes carry iam.gke.io/gke-metadata-server-enabled=true
    # (cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
    emulator, clock, endpoint = world
    provider(endpoint, clock, workload_identity=True).create(request("wi-1"))
    provider(endpoint, clock).create(request("plain-1", instance_type="e2-standard-8"))
    configs = {p.body["config"]["machineType"]: p.body["config"] for p in emulator.pools.values()}
    assert configs["n1-standard-4"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert "workloadMetadataConfig" not in configs["e2-standard-8"]  # the cluster's default


def test_a_larger_boot_disk_for_the_pods_ephemeral_storage_is_a_pool_of_its_own(
    world: tuple[GkeEmulator, Clock, str],
) -> None:
    # diskSizeGb is fixed at a pool's creation: a node needing a 1000 GB disk gets a pool of
    # its own, and pools of the configured size keep their names.
    emulator, clock, endpoint = world
    gke = provider(endpoint, clock)
    plain = gke.create(request("plain"))
    big_request = dataclasses.replace(request("big"), disk_gib=1000)
    gke.create(big_request)
    sizes = sorted(p.body["config"]["diskSizeGb"] for p in emulator.pools.values())
    assert sizes == [100, 1000]
    assert gke.shape(request("again"), "us-central1-b").pool_name("dev-cluster") in {
        p.body["name"] for p in emulator.pools.values()
    }
    assert plain.state is InstanceState.PENDING

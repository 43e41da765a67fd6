"""The OKE provider through the real `oci` SDK (signed requests, retries off) against the
OKE emulator, which verifies every signature, on a clock the test moves; and the error
mapping on recorded OCI error bodies."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import oci
import pytest

from gibbous.autoscaler.cloud.base import (
    CloudError,
    FatalConfigurationError,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.autoscaler.cloud.fake import FakeCloudProvider
from gibbous.autoscaler.cloud.oke import classify_api_error, discover, pick_image, sdk_clients
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.autoscaler.loop import Autoscaler
from gibbous.core import keys
from gibbous.core.settings.options.oci import OciConfig
from gibbous.devcluster.oci.agent import bootstrap_kubelet_args, kubelet_labels, kubelet_taints
from gibbous.devcluster.oci.emulator import OkeEmulator, emulator_identity
from gibbous.devcluster.oci.state import ADS, COMPARTMENT, POD_SUBNET, SUBNET, Fault, pod_capacity
from tests.autoscaler.fakes import FakeCluster, Tokens
from tests.autoscaler.sdkworld import OPENED, Clock
from tests.factories import catalog, config, make_pod

World = tuple[OkeEmulator, Clock, str, dict[str, Any]]


@pytest.fixture
def world() -> Iterator[World]:
    clock = Clock()
    sdk_config, public = emulator_identity()
    emulator = OkeEmulator(public_key=public, clock=clock, operation_s=30.0)
    server = emulator.serve()
    yield emulator, clock, f"http://127.0.0.1:{server.server_address[1]}", sdk_config
    server.shutdown()
    server.server_close()


def provider(world: World, **config: Any) -> SizedPoolProvider:
    emulator, clock, endpoint, sdk_config = world
    container, identity = sdk_clients(sdk_config, endpoint)
    made = discover(
        container=container,
        identity=identity,
        config=OciConfig(
            compartment_id=COMPARTMENT,
            cluster_id=emulator.cluster_id,
            subnet_id=SUBNET,
            boot_volume_size_gb=config.pop("boot_volume_size_gb", 100),
            **config,
        ),
        cluster_id="dev-cluster",
        catalog=catalog("oci"),
        clock=clock,
        empty_pool_s=600.0,
    )
    OPENED.append(made)
    return made


def request(
    token: str,
    instance_type: str = "VM.Standard.E4.Flex-4-32",
    category: str = "on-demand",
    zones: tuple[str, ...] = (),
) -> LaunchRequest:
    return LaunchRequest(
        token=token,
        cluster_id="dev-cluster",
        instance_type=instance_type,
        category=category,
        zones=zones,
        labels={keys.PLACEMENT: "bin-pack", keys.INSTANCE_TYPE: instance_type},
        taints=({"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"},)
        if category == "spot"
        else (),
    )


def test_a_flex_pool_with_the_catalog_entrys_ocpus_and_memory(world: World) -> None:
    emulator, clock, _, _ = world
    oke = provider(world)
    first = oke.create(request("f-0"))
    for index in range(1, 10):
        oke.create(request(f"f-{index}"))
    (pool,) = emulator.pools.values()
    body = pool.body
    assert body["nodeShape"] == "VM.Standard.E4.Flex"
    assert body["nodeShapeConfig"] == {"ocpus": 4.0, "memoryInGBs": 32.0}
    assert body["nodeSourceDetails"]["imageId"] == pick_image(
        emulator.images(), emulator.version, "amd64", False
    )
    assert body["nodeSourceDetails"]["bootVolumeSizeInGBs"] == 100
    assert body["nodeConfigDetails"]["placementConfigs"] == [
        {"availabilityDomain": ADS[0], "subnetId": SUBNET}
    ]
    assert body["freeformTags"] == {"gibbous-cluster-id": "dev-cluster"}
    assert {kv["key"] for kv in body["initialNodeLabels"]} == {keys.PLACEMENT}
    assert "nodeMetadata" not in body  # no taints to give the kubelet
    clock.now += 31
    oke.advance()  # the create's work request is done: the 9 others in one resize
    assert pool.size == 10
    clock.now += 31
    listed = oke.list("dev-cluster")
    assert len(listed) == 10 and {i.state for i in listed} == {InstanceState.RUNNING}
    mine = oke.get(first.id)
    assert mine.id.startswith("ocid1.instance.") and mine.zone == "US-ASHBURN-AD-1"
    assert mine.token == "f-0" and mine.node_name.startswith("10.0.")


def test_instances_name_the_kubernetes_node_by_private_ip_not_okes_node_name(
    world: World,
) -> None:
    """OKE's `Node.name` is `oke-c<cluster>-n<pool>-s<subnet>-<slot>` ("Generated Worker
    Node Name Formats"); the Kubernetes Node is the private IP with the instance OCID as
    providerID. An instance named by OKE's name never meets its Node: orphaned, and
    scale-down would delete the Node object but not the instance."""
    emulator, clock, _, _ = world
    oke = provider(world)
    launched = oke.create(request("n-0"))
    clock.now += 31
    oke.advance()
    (pool,) = emulator.pools.values()
    (node,) = pool.nodes.values()
    assert node.name.startswith("oke-c") and node.name.endswith("-0")
    assert node.private_ip != node.name
    mine = oke.get(launched.id)
    assert (mine.id, mine.node_name) == (node.id, node.private_ip)
    (listed,) = oke.list("dev-cluster")
    assert (listed.id, listed.node_name, listed.token) == (node.id, node.private_ip, "n-0")
    # A restarted provider adopts it under the same Node name.
    (adopted,) = provider(world).list("dev-cluster")
    assert adopted.node_name == node.private_ip
    oke.delete(node.id)
    assert node.state == "DELETING" and pool.size == 0


def test_the_image_is_the_one_of_the_exact_kubernetes_version() -> None:
    """OKE image names end `-OKE-<version>-<build>` (e.g.
    `Oracle-Linux-8.10-2025.01.31-0-OKE-1.31.1-760`): for v1.31.1, never 1.31.10's."""
    sources = [
        ("Oracle-Linux-8.10-2025.01.31-0-OKE-1.31.10-760", "ten"),
        ("Oracle-Linux-8.10-Gen2-GPU-2025.01.31-0-OKE-1.31.10-760", "ten-gpu"),
        ("Oracle-Linux-8.10-aarch64-2025.01.31-0-OKE-1.31.10-760", "ten-arm"),
        ("Oracle-Linux-8.10-2025.01.31-0-OKE-1.31.1-760", "one"),
        ("Oracle-Linux-8.10-Gen2-GPU-2025.01.31-0-OKE-1.31.1-760", "one-gpu"),
        ("Oracle-Linux-8.10-aarch64-2025.01.31-0-OKE-1.31.1-760", "one-arm"),
    ]
    assert pick_image(sources, "v1.31.1", "amd64", False) == "one"
    assert pick_image(sources, "v1.31.1", "amd64", True) == "one-gpu"
    assert pick_image(sources, "v1.31.1", "arm64", False) == "one-arm"
    assert pick_image(sources, "v1.31.10", "amd64", False) == "ten"
    assert pick_image(sources, "v1.31.2", "amd64", False) == ""


def test_the_emulator_lists_images_of_other_versions_and_the_pool_gets_its_own(
    world: World,
) -> None:
    emulator, _, _, _ = world
    assert len(emulator.listed_images()) > len(emulator.images())
    oke = provider(world)
    oke.create(request("i-0"))
    (pool,) = emulator.pools.values()
    assert pool.body["nodeSourceDetails"]["imageId"] in {i for _, i in emulator.images()}


def test_preemptible_capacity_with_taints_through_the_bootstrap_cloud_init(
    world: World,
) -> None:
    emulator, _, _, _ = world
    oke = provider(world)
    oke.create(request("p-0", instance_type="VM.GPU.A10.1", category="spot"))
    (pool,) = emulator.pools.values()
    placement = pool.body["nodeConfigDetails"]["placementConfigs"][0]
    assert placement["preemptibleNodeConfig"] == {
        "preemptionAction": {"type": "TERMINATE", "isPreserveBootVolume": False}
    }
    # OKE's documented way: cloud-init running OKE's bootstrap with --kubelet-extra-args.
    extra = bootstrap_kubelet_args(pool.body["nodeMetadata"])
    assert kubelet_taints(extra) == [
        {"key": "gibbous.dev/capacity-type", "value": "spot", "effect": "NoSchedule"}
    ]
    assert kubelet_labels(extra) == {}
    assert pool.body["nodeSourceDetails"]["imageId"] == pick_image(
        emulator.images(), emulator.version, "amd64", True
    )


def test_out_of_host_capacity_inside_the_work_request_fails_and_is_undone(world: World) -> None:
    emulator, clock, _, _ = world
    emulator.faults = [Fault("capacity", shape="VM.GPU.A10.1", preemptible=True)]
    oke = provider(world)
    launched = oke.create(request("c-0", instance_type="VM.GPU.A10.1", category="spot"))
    clock.now += 31
    failed = oke.get(launched.id)
    assert (
        failed.state is InstanceState.TERMINATED and failed.failure_kind == "insufficient-capacity"
    )
    assert "Out of host capacity" in failed.failure_reason
    (pool,) = emulator.pools.values()
    # OKE left the node it could not make, with its nodeError; Gibbous deletes the pool.
    assert [n.error for n in pool.nodes.values()] == [("InternalError", "Out of host capacity.")]
    assert pool.state == "DELETING"
    clock.now += 31
    oke.advance()
    clock.now += 31
    emulator.advance()
    assert not emulator.pools
    oke.delete(launched.id)
    with pytest.raises(InstanceNotFoundError):
        oke.get(launched.id)


def test_quota_throttling_single_node_removal_and_empty_pools(world: World) -> None:
    emulator, clock, endpoint, sdk_config = world
    oke = provider(world)
    emulator.faults = [Fault("quota", shape="VM.GPU.A10.1")]
    with pytest.raises(QuotaExceededError, match="LimitExceeded"):
        oke.create(request("q-0", instance_type="VM.GPU.A10.1"))
    emulator.faults = [Fault("throttle", times=1)]
    waiting = oke.create(request("q-1"))
    assert waiting.state is InstanceState.PENDING and not emulator.pools
    emulator.faults = []
    oke.advance()
    (pool,) = emulator.pools.values()
    clock.now += 31
    oke.advance()
    clock.now += 1
    running = oke.get(waiting.id)
    assert running.state is InstanceState.RUNNING
    oke.delete(running.id)  # DeleteNode with decrement-size
    assert pool.size == 0
    clock.now += 31
    emulator.advance()
    assert not pool.nodes
    # An operator's pool, untagged, is never touched.
    container, identity = sdk_clients(sdk_config, endpoint)
    OPENED.extend((container.base_client.session, identity.base_client.session))
    details = oke.cloud.details(oke.shape(request("x")), "operators", 0)  # type: ignore[attr-defined]
    details.freeform_tags = {}
    container.create_node_pool(details)
    oke.list("dev-cluster")
    clock.now += 601
    oke.list("dev-cluster")
    clock.now += 31
    emulator.advance()
    assert [p.body["name"] for p in emulator.pools.values()] == ["operators"]


def test_a_restarted_provider_finds_the_nodes(world: World) -> None:
    _, clock, _, _ = world
    first = provider(world)
    first.create(request("r-0"))
    clock.now += 31
    first.advance()
    (found,) = provider(world).list("dev-cluster")
    assert (
        found.state is InstanceState.RUNNING and found.instance_type == "VM.Standard.E4.Flex-4-32"
    )
    assert found.labels[keys.PLACEMENT] == "bin-pack"


def test_the_emulator_checks_signatures_and_bodies(world: World) -> None:
    _, _, endpoint, sdk_config = world
    unsigned = urllib.request.Request(f"{endpoint}/20180222/nodePools?compartmentId={COMPARTMENT}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned)
    refused.value.close()
    assert refused.value.code == 401
    other, _ = emulator_identity()  # a key the emulator does not know
    container, identity = sdk_clients(other, endpoint)
    OPENED.extend((container.base_client.session, identity.base_client.session))
    with pytest.raises(oci.exceptions.ServiceError) as wrong:
        container.list_node_pools(COMPARTMENT)
    assert wrong.value.status == 401
    container, identity = sdk_clients(sdk_config, endpoint)
    OPENED.extend((container.base_client.session, identity.base_client.session))
    with pytest.raises(oci.exceptions.ServiceError, match="Unknown field 'nodeShapes'"):
        container.base_client.call_api(
            resource_path="/nodePools",
            method="POST",
            header_params={"content-type": "application/json", "accept": "application/json"},
            body={"compartmentId": COMPARTMENT, "nodeShapes": "x"},
        )


def _recorded(status: int, code: str, message: str) -> oci.exceptions.ServiceError:
    return oci.exceptions.ServiceError(status, code, {"opc-request-id": "x"}, message)


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (429, "TooManyRequests", "Too many requests for the user", ThrottledError),
        (409, "Conflict", "Node pool has a work request in progress", ThrottledError),
        (
            400,
            "LimitExceeded",
            "The following service limits were exceeded: gpu-a10-count",
            QuotaExceededError,
        ),
        (400, "QuotaExceeded", "Quota exceeded for compartment", QuotaExceededError),
        (500, "InternalError", "Out of host capacity.", InsufficientCapacityError),
        (
            404,
            "NotAuthorizedOrNotFound",
            "Authorization failed or requested resource not found.",
            FatalConfigurationError,
        ),
        (400, "InvalidParameter", "Shape VM.Nope is not valid", CloudError),
    ],
)
def test_error_mapping_on_recorded_oci_errors(
    status: int, code: str, message: str, kind: type[Exception]
) -> None:
    error = classify_api_error(_recorded(status, code, message))
    assert type(error) is kind, error


def test_the_bootstrap_arguments_are_read_from_the_cloud_init() -> None:
    """OKE's documented scripts: `bash /var/run/oke-init.sh --kubelet-extra-args ...`
    (Oracle Linux images) and `oke bootstrap --kubelet-extra-args ...` (Ubuntu images)."""
    oracle_linux = (
        "#!/bin/bash\ncurl --fail -H 'Authorization: Bearer Oracle' -L0 "
        "http://169.254.169.254/opc/v2/instance/metadata/oke_init_script | base64 --decode "
        ">/var/run/oke-init.sh\n"
        'bash /var/run/oke-init.sh --kubelet-extra-args "--register-with-taints=a=b:NoSchedule"\n'
    )
    ubuntu = '#!/usr/bin/env bash\noke bootstrap --kubelet-extra-args "--max-pods=31"\n'
    for script, args in (
        (oracle_linux, "--register-with-taints=a=b:NoSchedule"),
        (ubuntu, "--max-pods=31"),
    ):
        encoded = base64.b64encode(script.encode()).decode()
        assert bootstrap_kubelet_args({"user_data": encoded}) == args
    assert bootstrap_kubelet_args({"kubelet-extra-args": "--max-pods=31"}) == ""  # unverified key
    assert bootstrap_kubelet_args({}) == ""


def test_kubelet_extra_args_are_read_as_the_kubelet_reads_them() -> None:
    extra = "--node-labels=a=b,c=d --register-with-taints=x=y:NoSchedule,z=:NoExecute --max-pods=64"
    assert kubelet_labels(extra) == {"a": "b", "c": "d"}
    assert kubelet_taints(extra) == [
        {"key": "x", "value": "y", "effect": "NoSchedule"},
        {"key": "z", "value": "", "effect": "NoExecute"},
    ]
    assert json.dumps(kubelet_taints("")) == "[]"


def test_labels_the_kubelet_may_not_set_stay_off_the_pool(world: World) -> None:
    """OKE refuses initial node labels in the kubelet-restricted namespaces (the emulator,
    docs/clouds/oke.md): such labels wait for the node to register."""
    emulator, clock, _, _ = world
    oke = provider(world)
    wanted = request("role-0")
    restricted = {"node-role.kubernetes.io/gpu": "", "kubernetes.io/team": "ml"}
    made = oke.create(replace(wanted, labels={**wanted.labels, **restricted}))
    (pool,) = emulator.pools.values()
    assert {kv["key"] for kv in pool.body["initialNodeLabels"]} == {keys.PLACEMENT}
    clock.now += 31
    oke.advance()
    assert oke.get(made.id).state is not InstanceState.TERMINATED


@pytest.mark.parametrize(
    ("cni", "config", "pods", "subnets"),
    [
        ("FLANNEL_OVERLAY", {}, 110, None),
        ("OCI_VCN_IP_NATIVE", {}, 31, [SUBNET]),  # OKE's default; the node subnet for pods
        (
            "OCI_VCN_IP_NATIVE",
            {"pod_subnet_ids": (POD_SUBNET,), "max_pods_per_node": 64},
            64,
            [POD_SUBNET],
        ),
    ],
)
def test_pools_follow_the_clusters_pod_network(
    world: World, cni: str, config: dict[str, Any], pods: int, subnets: list[str] | None
) -> None:
    """A VCN-native cluster's pool names its pod subnets (OKE refuses it otherwise: the
    emulator, docs/clouds/oke.md), and nodes run the pod network's max pods."""
    emulator, clock, _, _ = world
    emulator.cni_type = cni
    oke = provider(world, **config)
    types = {t.name: t for t in oke.instance_types()}
    assert types["VM.Standard.E4.Flex-4-32"].max_pods == pods  # 4 VNICs: up to 93
    made = oke.create(request("net-0"))
    (pool,) = emulator.pools.values()
    details = pool.body["nodeConfigDetails"].get("nodePoolPodNetworkOptionDetails") or {}
    assert details.get("podSubnetIds") == subnets
    assert pod_capacity(pool.body) == pods  # what the emulated kubelet registers
    clock.now += 31
    oke.advance()
    assert oke.get(made.id).state is not InstanceState.TERMINATED


def test_work_requests_take_their_time_times_the_time_scale(world: World) -> None:
    """Emulator durations are the cloud's, multiplied by `time_scale` (docs/clouds/oke.md:
    a work request about 3 minutes; the dev cluster runs at 1/100)."""
    emulator, clock, _, _ = world
    emulator.operation_s, emulator.time_scale = 180.0, 0.01
    oke = provider(world)
    oke.create(request("scaled-0"))
    (work,) = emulator.work_requests.values()
    clock.now += 1.7
    emulator.advance()
    assert work.status == "IN_PROGRESS"
    clock.now += 0.2  # 1.9 s > 180 s x 0.01
    emulator.advance()
    assert work.status == "SUCCEEDED"


def test_vcn_native_max_pods_follow_the_shapes_vnics(world: World) -> None:
    """OKE, "Pod Networking": each VNIC but the node's first gives pods 31 IPs, and
    maxPodsPerNode "will be limited by the number of VNICs attachable to the node pool
    shape" (the SDK's model). OCI's "Compute Shapes": a Flex VM with 1 OCPU has 2 VNICs,
    with more 1 per OCPU. Asked for 110 pods, by hand:
    VM.Standard.E4.Flex with 1 OCPU: 2 VNICs -> (2 - 1) x 31 = 31 pods;
    VM.Standard.E4.Flex with 4 OCPUs: 4 VNICs -> (4 - 1) x 31 = 93 pods;
    VM.GPU3.1: 6 VNICs -> 155 IPs, so the 110 asked for."""
    emulator, _, _, _ = world
    emulator.cni_type = "OCI_VCN_IP_NATIVE"
    oke = provider(world, pod_subnet_ids=(POD_SUBNET,), max_pods_per_node=110)
    types = {t.name: t for t in oke.instance_types()}
    expected = {"VM.Standard.E4.Flex-1-8": 31, "VM.Standard.E4.Flex-4-32": 93, "VM.GPU3.1": 110}
    assert {name: types[name].max_pods for name in expected} == expected
    for name in expected:
        oke.create(request(f"vnic-{name}", instance_type=name))
    registered = {
        (p.body["nodeShape"], (p.body.get("nodeShapeConfig") or {}).get("ocpus")): pod_capacity(
            p.body
        )
        for p in emulator.pools.values()
    }
    assert registered == {
        ("VM.Standard.E4.Flex", 1.0): 31,
        ("VM.Standard.E4.Flex", 4.0): 93,
        ("VM.GPU3.1", None): 110,
    }


def test_thirty_pools_survive_read_throttling_while_their_launches_fly(
    world: World,
) -> None:
    """30 pools (10 shapes in 3 availability domains) launched at once and driven as the
    loop drives a provider: launches retried after a throttled create, the instances
    listed every 2 s, each launch whose node is not up polled every 2 s, and both paused
    as long as a throttled answer asks. The emulator throttles reads (429 TooManyRequests)
    with a bucket of 20 refilled at 10 a second (OCI publishes no rate: the guess in
    docs/clouds/oke.md). Before the pool reads were budgeted, every poll of every launch
    asked each running work request again and each listing read every pool (over a
    thousand reads a step at this size)."""
    emulator, clock, _, _ = world
    oke = provider(world)
    shapes = [
        f"VM.Standard.{family}.Flex-{size}"
        for family in ("E4", "E5")
        for size in ("1-8", "2-16", "4-32", "8-64", "16-128")
    ]
    launches = {
        f"p-{index}": request(f"p-{index}", shape, zones=(ad.split(":")[1],))
        for index, (shape, ad) in enumerate((s, ad) for s in shapes for ad in ADS)
    }
    assert len(launches) == 30
    retry_at = dict.fromkeys(launches, clock.now)
    accepted: dict[str, str] = {}  # token -> the id to poll
    up: set[str] = set()
    list_at = poll_at = clock.now
    gets_at: list[tuple[float, int]] = []  # (emulator second, GETs sent in it)
    start = clock.now
    while len(up) < len(launches):
        assert clock.now - start < 240, f"{len(up)} of 30 up after 4 minutes"
        sent = sum(1 for method, _ in emulator.requests if method == "GET")
        for token in [t for t in launches if t not in accepted and clock.now >= retry_at[t]]:
            try:
                accepted[token] = oke.create(launches[token]).id
            except ThrottledError as error:
                retry_at[token] = clock.now + error.retry_after_s
        if clock.now >= list_at:
            try:
                listed = oke.list("dev-cluster")
                list_at = clock.now + 2
                assert all(i.state is not InstanceState.TERMINATED for i in listed)
                up |= {i.token for i in listed if i.state is InstanceState.RUNNING}
            except ThrottledError as error:
                list_at = clock.now + error.retry_after_s
        if clock.now >= poll_at:
            poll_at = clock.now + 2
            for token, instance_id in accepted.items():
                if token in up:
                    continue
                try:
                    polled = oke.get(instance_id)
                except ThrottledError as error:
                    poll_at = clock.now + error.retry_after_s
                    break
                assert polled.state is not InstanceState.TERMINATED, polled.failure_reason
                accepted[token] = polled.id
        gets_at.append((clock.now, sum(1 for m, _ in emulator.requests if m == "GET") - sent))
        clock.now += 1
    # Every launch came up once, on its own pool; nothing was deleted or failed.
    assert len(emulator.pools) == 30
    assert all([n.state for n in p.nodes.values()] == ["ACTIVE"] for p in emulator.pools.values())
    assert not any(method == "DELETE" for method, _ in emulator.requests)
    assert {i.token for i in oke.list("dev-cluster")} == set(launches)
    # The burst was throttled, and the reads then kept under the rate: at most the
    # bucket plus 10 a second in any 10 s (hand computation: 20 + 10 x 10 = 120).
    assert emulator.reads.refused
    for index in range(len(gets_at)):
        window = [n for when, n in gets_at[index:] if when < gets_at[index][0] + 10]
        assert sum(window) <= 120, (gets_at[index][0] - start, window)


@dataclass
class OkeKubelets(FakeCluster):
    """The cluster as OKE's kubelets make it: each ACTIVE node of the emulator registers
    under its private IP with its instance OCID as providerID (what the node agent does),
    Ready; the rest of the cluster as the fake keeps it."""

    emulator: OkeEmulator | None = None

    def nodes(self) -> list[dict[str, Any]]:
        assert self.emulator is not None
        out = []
        for pool, node in self.emulator.active_nodes():
            labels = {kv["key"]: kv["value"] for kv in pool.body.get("initialNodeLabels") or []}
            out.append(
                {
                    "metadata": {
                        "name": node.private_ip,
                        "labels": {**labels, keys.HOSTNAME: node.private_ip},
                        "resourceVersion": node.id,
                        "creationTimestamp": "2027-01-15T08:00:00Z",
                    },
                    "spec": {"providerID": node.id, "taints": []},
                    "status": {
                        "allocatable": {"cpu": "7", "memory": "30Gi", "pods": "110"},
                        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        return out


def test_an_oke_node_launched_by_the_loop_is_still_running_and_matched_an_hour_later(
    world: World,
) -> None:
    """The issue's proof, on the emulator's clock: the loop launches an OKE node for a
    pod, the node registers under its private IP (OKE's `Node.name` is `oke-c...`), and an
    hour later, with the default registrationTimeout and orphanGracePeriod long past, it
    is still ACTIVE, matched to its instance and never taken for an orphan."""
    emulator, clock, _, _ = world
    oke = provider(world)
    cfg = config(cloudProvider="oci")
    cluster = OkeKubelets(FakeCloudProvider(oke.instance_types(), clock), cfg, emulator=emulator)
    autoscaler = Autoscaler(cfg, oke, cluster, clock=clock, new_token=Tokens(), jitter=lambda: 0.5)
    cluster.add(make_pod("kept", cpu="1", memory="1Gi"))
    start = clock.now
    node = None
    while clock.now - start < 3600:
        autoscaler.step()
        if node is None and emulator.active_nodes():
            ((_, node),) = emulator.active_nodes()
            cluster.bind("default/kept", node.private_ip)
        clock.now += 30 if node is not None else 2  # idle, the loop lists every 30 s
    assert node is not None and node.name.startswith("oke-c")
    assert node.state == "ACTIVE" and node.gone_at is None
    assert not any(method == "DELETE" for method, _ in emulator.requests)
    assert autoscaler.orphans_seen == {} and not autoscaler.launches
    (instance,) = autoscaler.instances
    assert (instance.id, instance.node_name) == (node.id, node.private_ip)


def test_types_are_offered_in_the_availability_domains_as_oke_labels_them(world: World) -> None:
    # OKE labels a node with the AD's shortened name, US-ASHBURN-AD-n in Ashburn (OKE
    # "Supported Labels for Different Usecases"); the tenancy prefix is not in the label.
    zones = {t.zones for t in provider(world).instance_types()}
    assert zones == {("US-ASHBURN-AD-1", "US-ASHBURN-AD-2", "US-ASHBURN-AD-3")}


def test_a_larger_boot_volume_for_the_pods_ephemeral_storage_is_a_pool_of_its_own(
    world: World,
) -> None:
    emulator, _, _, _ = world
    oke = provider(world)
    oke.create(request("plain"))
    oke.create(replace(request("big"), disk_gib=889))
    sizes = sorted(
        p.body["nodeSourceDetails"]["bootVolumeSizeInGBs"] for p in emulator.pools.values()
    )
    assert sizes == [100, 889]

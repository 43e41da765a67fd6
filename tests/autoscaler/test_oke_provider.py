"""The OKE provider through the real `oci` SDK (signed requests, retries off) against the
OKE emulator, which verifies every signature, on a clock the test moves; and the error
mapping on recorded OCI error bodies."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
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
from gibbous.autoscaler.cloud.oke import classify_api_error, discover, pick_image, sdk_clients
from gibbous.autoscaler.cloud.sizedpools import SizedPoolProvider
from gibbous.core import keys
from gibbous.core.settings.options.oci import OciConfig
from gibbous.devcluster.oci.agent import bootstrap_kubelet_args, kubelet_labels, kubelet_taints
from gibbous.devcluster.oci.emulator import OkeEmulator, emulator_identity
from gibbous.devcluster.oci.state import ADS, COMPARTMENT, POD_SUBNET, SUBNET, Fault, pod_capacity
from tests.autoscaler.sdkworld import OPENED, Clock
from tests.factories import catalog

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
    assert {t.max_pods for t in oke.instance_types()} == {pods}
    made = oke.create(request("net-0"))
    (pool,) = emulator.pools.values()
    details = pool.body["nodeConfigDetails"].get("nodePoolPodNetworkOptionDetails") or {}
    assert details.get("podSubnetIds") == subnets
    assert pod_capacity(pool.body) == pods  # what the emulated kubelet registers
    clock.now += 31
    oke.advance()
    assert oke.get(made.id).state is not InstanceState.TERMINATED


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

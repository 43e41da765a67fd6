"""The kwok provider registers Nodes in the real API server and plays their kubelet."""

from __future__ import annotations

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.base import InstanceNotFoundError, InstanceState, LaunchRequest
from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.autoscaler.kube import KubeCluster
from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.planning.nodes import node_labels, node_taints
from gibbous.core.planning.placement import node_view
from gibbous.kubeapi import parse_version
from tests.factories import catalog, config, offers

pytestmark = pytest.mark.e2e


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_nodes_appear_boot_and_go(api: client.ApiClient) -> None:
    cfg = config()
    clock = Clock()
    cloud = KwokCloudProvider(api, catalog("aws"), cfg, clock, boot_s=30)
    offer = next(o for o in offers() if o.name == "g4dn.xlarge" and str(o.category) == "spot")
    request = LaunchRequest(
        token="launch-000000000001",
        cluster_id="kwok-e2e",
        instance_type="g4dn.xlarge",
        category="spot",
        zones=("us-west-2b",),
        labels=node_labels(
            offer, Placement.BIN_SELECT, cfg, zone="us-west-2b", assigned_pod_uid="u-1"
        ),
        taints=tuple(node_taints(offer)),
    )
    instance = cloud.create(request)
    assert cloud.create(request).id == instance.id  # idempotent by launch token
    assert instance.state is InstanceState.PENDING
    core = client.CoreV1Api(api)
    node = core.read_node(instance.id)
    assert {t.key for t in node.spec.taints} == {keys.NOT_READY_TAINT, keys.SPOT_TAINT_KEY}
    clock.now += 31
    cloud.heartbeat("kwok-e2e")
    assert cloud.get(instance.id).state is InstanceState.RUNNING
    raw = api.sanitize_for_serialization(core.read_node(instance.id))
    view = node_view(raw)
    assert (
        view.created_by_gibbous
        and view.placement is Placement.BIN_SELECT
        and view.assigned_pod_uid == "u-1"
    )
    assert view.gpu_count == 1 and view.gpu_sku == "T4" and view.allocatable.gpus == 1
    assert {t["key"] for t in raw["spec"]["taints"]} == {
        keys.SPOT_TAINT_KEY
    }  # not-ready taint gone
    lease = client.CoordinationV1Api(api).read_namespaced_lease(instance.id, "kube-node-lease")
    assert lease.spec.holder_identity == instance.id
    assert [i.id for i in cloud.list("kwok-e2e")] == [instance.id]
    cloud.delete(instance.id)
    with pytest.raises(InstanceNotFoundError):
        cloud.get(instance.id)


def test_a_sized_disk_and_the_clouds_spot_labels_reach_the_node(api: client.ApiClient) -> None:
    # A node for 800Gi of ephemeral storage on EKS: 890 GiB root volume, allocatable
    # 890 - 89 (nodefs.available 10%) - 1 (kube-reserved) = 800 GiB; a spot node carries
    # EKS's and Karpenter's capacity labels as the cloud and Karpenter write them.
    cfg = config()
    cloud = KwokCloudProvider(api, catalog("aws"), cfg, Clock(), boot_s=30)
    offer = next(o for o in offers() if o.name == "m5.large" and str(o.category) == "spot")
    instance = cloud.create(
        LaunchRequest(
            token="launch-000000000890",
            cluster_id="kwok-e2e-disk",
            instance_type="m5.large",
            category="spot",
            zones=("us-west-2a",),
            labels=node_labels(offer, Placement.BIN_SELECT, cfg, zone="us-west-2a"),
            taints=tuple(node_taints(offer)),
            disk_gib=890,
        )
    )
    node = client.CoreV1Api(api).read_node(instance.id)
    assert node.status.capacity["ephemeral-storage"] == str(890 * 2**30)
    assert node.status.allocatable["ephemeral-storage"] == str(800 * 2**30)
    labels = node.metadata.labels
    assert labels["eks.amazonaws.com/capacityType"] == "SPOT"
    assert labels["karpenter.sh/capacity-type"] == "spot"
    cloud.delete(instance.id)


def test_node_writes_against_the_real_api_server(api: client.ApiClient) -> None:
    """Hot-node taints keep other taints (the list is replaced whole, guarded by
    resourceVersion), cordon works, and a cluster without metrics-server yields no metrics
    rather than an error."""
    version = client.VersionApi(api).get_code()
    cluster = KubeCluster(api, server_version=parse_version(version.major, version.minor))
    core = client.CoreV1Api(api)
    core.create_node(
        {
            "metadata": {"name": "writes-e2e"},
            "spec": {"taints": [{"key": "team", "value": "ml", "effect": "NoSchedule"}]},
        }
    )
    try:

        def taints() -> set[tuple[str, str | None]]:
            # The API server's TaintNodesByCondition adds not-ready to a new Node; ignore it.
            return {
                (t.key, t.value)
                for t in core.read_node("writes-e2e").spec.taints or []
                if t.key != keys.NOT_READY_TAINT
            }

        cluster.set_hot_taint("writes-e2e", keys.HOT_NODE_WARM)
        cluster.set_hot_taint("writes-e2e", keys.HOT_NODE_HOT)
        assert taints() == {("team", "ml"), (keys.HOT_NODE_TAINT, "hot")}
        cluster.set_hot_taint("writes-e2e", "")
        assert taints() == {("team", "ml")}
        cluster.cordon("writes-e2e")
        assert core.read_node("writes-e2e").spec.unschedulable is True
        cluster.annotate_node(
            "writes-e2e", "gibbous.dev/observed-utilization", "cpu=1.0,memory=2.0"
        )
        annotations = core.read_node("writes-e2e").metadata.annotations
        assert annotations["gibbous.dev/observed-utilization"] == "cpu=1.0,memory=2.0"
        assert cluster.node_metrics() is None and cluster.pod_metrics() is None
    finally:
        cluster.delete_node("writes-e2e")
        cluster.delete_node("writes-e2e")  # already gone: no error

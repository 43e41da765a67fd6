"""The kwok provider registers Nodes in the real API server and plays their kubelet."""

from __future__ import annotations

import pytest
from kubernetes import client

from gibbous.autoscaler.cloud.base import InstanceNotFoundError, InstanceState, LaunchRequest
from gibbous.autoscaler.cloud.kwok import KwokCloudProvider
from gibbous.core import keys
from gibbous.core.classify import Placement
from gibbous.core.nodes import node_labels, node_taints
from gibbous.core.placement import node_view
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

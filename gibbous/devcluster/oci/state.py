"""The OKE emulator's state: the tenancy it plays (fixed OCIDs, region, availability
domains, as the dev cluster's settings name them too), node pools, their nodes, work
requests, and the fault table; and `EmulatedFleet`, what the node agent reads of it.

The emulator (`gibbous.devcluster.oci.emulator`) keeps these records and answers OCI's
API over them; the node agent (`gibbous.devcluster.oci.agent`) reads them through
`EmulatedFleet` alone, so neither module imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

TENANCY = "ocid1.tenancy.oc1..gibbousdev"
USER = "ocid1.user.oc1..gibbousdev"
COMPARTMENT = "ocid1.compartment.oc1..gibbousdev"
SUBNET = "ocid1.subnet.oc1.iad.gibbousdevnodes"
POD_SUBNET = "ocid1.subnet.oc1.iad.gibbousdevpods"  # for VCN-native pod networking
CLUSTER = "ocid1.cluster.oc1.iad.gibbousdev"
REGION = "us-ashburn-1"
ADS = ("Uocm:US-ASHBURN-AD-1", "Uocm:US-ASHBURN-AD-2", "Uocm:US-ASHBURN-AD-3")
# Pods a node runs (OKE docs, "Pod Networking"): 110 with flannel; with VCN-native pod
# networking the pool's maxPodsPerNode, 31 by default (one VNIC's secondary IPs), at most 110.
FLANNEL_PODS = 110
VCN_NATIVE_PODS = 31


# Max VNICs (Linux) of OCI's fixed shapes, as OCI's "Compute Shapes" page lists them (what
# ListShapes' maxVnicAttachments answers); a Flex VM: 2 with 1 OCPU, else 1 per OCPU (2 on
# VM.Optimized3.Flex), at most 24. Each VNIC but the node's gives pods 31 IPs.
SHAPE_VNICS = {
    "BM.GPU.A10.4": 256,
    "BM.GPU4.8": 64,
    "VM.GPU.A10.1": 15,
    "VM.GPU.A10.2": 24,
    "VM.GPU2.1": 12,
    "VM.GPU3.1": 6,
    "VM.GPU3.2": 12,
    "VM.GPU3.4": 24,
}
POD_IPS_PER_VNIC = 31


def shape_vnics(pool_body: Any) -> int:
    shape = str(pool_body.get("nodeShape") or "")
    if not shape.endswith(".Flex"):
        return SHAPE_VNICS.get(shape, 2)
    ocpus = float((pool_body.get("nodeShapeConfig") or {}).get("ocpus") or 1)
    per_ocpu = 2 if shape == "VM.Optimized3.Flex" else 1
    return min(24, max(2, int(per_ocpu * ocpus)))


def pod_capacity(pool_body: Any) -> int:
    """The kubelet's max pods on a node of the pool created with `pool_body`: with
    VCN-native pod networking the pool's maxPodsPerNode (31 when unset), limited by the
    pod IPs of the shape's VNICs."""
    details = (pool_body.get("nodeConfigDetails") or {}).get(
        "nodePoolPodNetworkOptionDetails"
    ) or {}
    if details.get("cniType") != "OCI_VCN_IP_NATIVE":
        return FLANNEL_PODS
    wanted = int(details.get("maxPodsPerNode") or VCN_NATIVE_PODS)
    return min(wanted, (shape_vnics(pool_body) - 1) * POD_IPS_PER_VNIC)


@dataclass
class Fault:
    """What goes wrong for pools matching every field given (empty / None: any).

    kind: `capacity` (the work request fails with InternalError "Out of host capacity."),
    `quota` (a create or resize refused at once, 400 LimitExceeded), `throttle` (429).
    `times`: how many requests it hits (None: all)."""

    kind: str
    shape: str = ""
    preemptible: bool | None = None
    availability_domain: str = ""
    times: int | None = None

    def matches(self, shape: str, preemptible: bool, ad: str) -> bool:
        return (
            (not self.shape or self.shape == shape)
            and (self.preemptible is None or self.preemptible == preemptible)
            and (not self.availability_domain or self.availability_domain == ad)
        )


def managed_node_name(cluster: str, pool: str, subnet: str, slot: int) -> str:
    """OKE's name for a managed node, `oke-c<cluster>-n<pool>-s<subnet>-<slot>` from parts
    of the OCIDs ("Generated Worker Node Name Formats", OKE docs); the 10 characters each
    part takes are a guess (the page says "a portion"). This is `Node.name` in the
    Container Engine API, not the Kubernetes Node's name (its private IP)."""

    def part(ocid: str) -> str:
        return re.sub(r"[^a-z0-9]", "", ocid.lower())[-10:]

    return f"oke-c{part(cluster)}-n{part(pool)}-s{part(subnet)}-{slot}"


@dataclass
class OkeNode:
    id: str  # the instance OCID: the Kubernetes Node's spec.providerID
    name: str  # OKE's generated name (`managed_node_name`), never the Kubernetes Node's
    private_ip: str  # the Kubernetes Node's name
    availability_domain: str
    state: str  # CREATING, ACTIVE, INACTIVE, DELETING
    ready_at: float
    error: tuple[str, str] | None = None
    gone_at: float | None = None


@dataclass
class OkePool:
    id: str
    body: dict[str, Any]  # the create details as sent (camelCase)
    nodes: dict[str, OkeNode] = field(default_factory=dict)
    state: str = "CREATING"
    size: int = 0
    busy: str = ""  # the work request running on it


@dataclass
class WorkRequest:
    id: str
    operation: str
    pool: str
    done_at: float
    finish: Callable[[], tuple[str, str] | None]
    status: str = "ACCEPTED"
    errors: list[tuple[str, str]] = field(default_factory=list)
    accepted: float = 0.0


class EmulatedFleet(Protocol):
    """What the node agent reads of the emulator: the ACTIVE nodes with their pool."""

    def active_nodes(self) -> list[tuple[OkePool, OkeNode]]: ...

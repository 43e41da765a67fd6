"""What a node keeps for itself (`nodeOverhead`): allocatable = capacity - all of this."""

from __future__ import annotations

from dataclasses import dataclass

from gibbous.core.settings.option import Option, Section
from gibbous.core.settings.valuetypes import BYTES, CPU, choice, whole_number


@dataclass(frozen=True)
class NodeOverheadConfig:
    """What a node keeps for itself; allocatable = capacity - all of this."""

    reservation: str = "tiered"  # tiered (GKE/AKS formula) | none
    cpu_millis: int = 0  # extra fixed reservation
    memory_bytes: int = 0
    eviction_memory_bytes: int = 100 * 2**20
    # Only where the cluster's DaemonSets are not known (`choice/daemonsets.py`).
    daemonset_cpu_millis: int = 100
    daemonset_memory_bytes: int = 200 * 2**20
    max_pods: int = 110


NODE_OVERHEAD = Section(
    "Node overhead",
    (
        Option(
            key="nodeOverhead.reservation",
            attribute="node_overhead.reservation",
            value_type=choice(("tiered", "none")),
            help="tiered: kube/system reservation by the GKE/AKS formula",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.cpu",
            attribute="node_overhead.cpu_millis",
            value_type=CPU,
            help="extra CPU reserved on every node",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.memory",
            attribute="node_overhead.memory_bytes",
            value_type=BYTES,
            help="extra memory reserved on every node",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.evictionMemory",
            attribute="node_overhead.eviction_memory_bytes",
            value_type=BYTES,
            help="kubelet hard eviction threshold",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.daemonSetCpu",
            attribute="node_overhead.daemonset_cpu_millis",
            value_type=CPU,
            help="CPU requested by DaemonSet pods on every node, when the cluster's "
            "DaemonSets are not known (gibbous estimate; the autoscaler reads them)",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.daemonSetMemory",
            attribute="node_overhead.daemonset_memory_bytes",
            value_type=BYTES,
            help="memory requested by DaemonSet pods on every node, when the cluster's "
            "DaemonSets are not known",
            luna=None,
            since="0.1.0",
        ),
        Option(
            key="nodeOverhead.maxPods",
            attribute="node_overhead.max_pods",
            value_type=whole_number(1, 10000),
            help="pods per node when the catalog does not say",
            luna=None,
            since="0.1.0",
        ),
    ),
)

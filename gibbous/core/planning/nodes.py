"""The labels and taints of the nodes Gibbous creates (what the extender and scale-down read back).

Every node: `node.elotl.co/created-by=gibbous`, `gibbous.dev/placement`,
`gibbous.dev/capacity-type`, `gibbous.dev/price-per-hour`, the standard
`node.kubernetes.io/instance-type`, `kubernetes.io/arch`, `topology.kubernetes.io/zone`
and region, GPU SKU and count, and the capacity-type labels other tools read. Bin-select
nodes also carry `gibbous.dev/assigned-pod-uid`. Spot nodes are tainted
`gibbous.dev/capacity-type=spot:NoSchedule`. With `placeNodeSelector`, the labels a pod's
nodeSelector or required node affinity asks for (a key `In` one value) that Gibbous does
not set itself are put on its node too.
"""

from __future__ import annotations

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.daemonsets import SPOT_TAINT
from gibbous.core.choice.selection import Offer, labels_to_place, offer_labels
from gibbous.core.podmodel.affinity import NodeAffinity
from gibbous.core.podmodel.constraints import PriceCategory
from gibbous.core.settings.config import Config


def node_labels(
    offer: Offer,
    placement: Placement,
    config: Config,
    *,
    zone: str | None,
    assigned_pod_uid: str = "",
    affinity: NodeAffinity | None = None,
) -> dict[str, str]:
    labels = offer_labels(offer, config, zone)
    labels[keys.PLACEMENT] = str(placement)
    if placement is Placement.BIN_SELECT and assigned_pod_uid:
        labels[keys.ASSIGNED_POD_UID] = assigned_pod_uid
    if affinity is not None:
        labels.update(labels_to_place(affinity, offer, config))
    return labels


def node_taints(offer: Offer) -> list[dict[str, str]]:
    return [dict(SPOT_TAINT)] if offer.category is PriceCategory.SPOT else []

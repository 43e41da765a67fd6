"""What would fit: place pending pods on existing nodes and on new ones.

One simulator serves provisioning, cost estimates and scale-down (Karpenter's
lesson): it is a pure function from pods, nodes and offers to a `Plan`.

* Existing nodes first (nodes already running or still launching), so no loop
  provisions twice for the same pods. Bin-pack pods only go to bin-pack or
  static nodes; a bin-select pod goes to the node made for it, or, with node
  reuse, to a bin-select node whose instance satisfies it.
* Bin-pack pods: multi-resource first-fit decreasing onto nodes of the
  bin-pack shape (cheapest offer meeting `binPackingNode*`), one shape per
  distinct node-affinity. Identical pods are placed as a group, which keeps
  10,000 pods fast. A pod too large for the shape is treated as bin-select.
* Bin-select pods: identical pods share a node type choice. Normally one node
  per pod at the cheapest offer; with node reuse, a larger type is taken
  when it holds several of them for strictly less in total.
* Pods with required pod affinity or anti-affinity or hard topology spread, and
  pods another pod's required anti-affinity selects, are placed one by one after
  the others, each on the first node (existing, in flight or planned) that the
  scheduler's inter-pod filters admit, else on a new node, put in the zone the
  rules allow with the fewest matching pods (`interpod`).
* Guardrails (`clusterGPULimit`, `maxNodes`, `maxClusterCostPerHour`) are
  checked before every node is opened; pods that would break one are
  reported, never placed.

The terms (pods, nodes, guardrails, the plan) are in `packingmodel`, the bookkeeping in
`packingstate`, the grouped fast path in `groupedpacking`, the one-by-one placement in
`constrained`; this module runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.constrained import ConstrainedPacking, split_constrained
from gibbous.core.planning.groupedpacking import GroupedPacking
from gibbous.core.planning.packingmodel import ExistingNode, Guardrails, PendingPod, Plan
from gibbous.core.planning.packingstate import as_bin_select
from gibbous.core.settings.config import Config


class _Simulation(GroupedPacking, ConstrainedPacking):
    """Both ways of placing on new nodes, over one bookkeeping."""


def simulate(
    pods: Iterable[PendingPod],
    offers: list[Offer],
    config: Config,
    *,
    existing: Iterable[ExistingNode] = (),
    guardrails: Guardrails | None = None,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
    zones_blocked: Callable[[str, str], frozenset[str]] | None = None,
) -> Plan:
    """Place `pods`: on `existing` nodes first, then on new nodes from `offers`.
    `zones_blocked(type, category)` names zones a new node of that offer must not use."""
    nodes = list(existing)
    simulation = _Simulation(
        offers, config, guardrails or Guardrails.from_config(config), backed_off, zones_blocked
    )
    ordered = []
    for pod in sorted(pods, key=lambda p: (-p.priority, p.key)):
        if pod.unsupported:
            simulation.unschedulable[pod.key] = pod.unsupported
        else:
            ordered.append(pod)
    constrained, free = split_constrained(ordered, nodes)
    left = simulation.place_on_existing(free, nodes)
    bin_pack = [p for p in left if p.placement is Placement.BIN_PACK]
    bin_select = [p for p in left if p.placement is Placement.BIN_SELECT]
    oversized = simulation.place_bin_pack(bin_pack)
    simulation.place_bin_select([as_bin_select(p) for p in oversized] + bin_select)
    if constrained:
        simulation.place_constrained(constrained, nodes, free)
    return simulation.plan()

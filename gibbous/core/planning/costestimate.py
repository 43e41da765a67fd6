"""`NodeCostEstimate` events for pods gated by Luna's `nodecostestimate`.

For each group of matching gated pods (same owner and same requirements), plan them on an
empty cluster with the current back-offs (Luna's estimates ignore existing nodes) and
tell each pod the node type it would get, its $/hr and how many such nodes the group needs
(and, apart, when that type is far larger than the pods ask: `estimate_outcomes`).

Message formats (compatible with the scripts that parse Luna's events: the price is
characters 17-24, the count the 4th word of the `; `-separated "estimated node count" part):

    Estimated cost $2.014400/hr for node type g6.8xlarge (on-demand); estimated node count 2
    No node type found: <why, e.g. every fitting offer is backed off after launch failures>
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.choice.selection import Offer
from gibbous.core.choice.wrongsize import WrongSize, wrong_size
from gibbous.core.planning.packing import simulate
from gibbous.core.planning.packingmodel import PendingPod, requirement_key
from gibbous.core.podmodel.pods import Pod, metadata
from gibbous.core.settings.config import Config


@dataclass(frozen=True)
class GatedPod:
    pod: PendingPod
    owner: str  # controller uid, or the pod's own key


def owner_of(pod: Pod) -> str:
    owners = metadata(pod).get("ownerReferences")
    if isinstance(owners, list):
        for owner in owners:
            if isinstance(owner, Mapping) and owner.get("controller"):
                return str(owner.get("uid") or owner.get("name") or "")
    return ""


def estimate_messages(
    gated: Iterable[GatedPod],
    offers: list[Offer],
    config: Config,
    *,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, str]:
    """pod key -> NodeCostEstimate message, for every gated pod."""
    return estimate_outcomes(gated, offers, config, backed_off=backed_off)[0]


def estimate_outcomes(
    gated: Iterable[GatedPod],
    offers: list[Offer],
    config: Config,
    *,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[dict[str, str], dict[str, WrongSize]]:
    """The NodeCostEstimate messages (as `estimate_messages`), and pod key -> how the node
    estimated for it is far larger than its pods ask (`wrongsize`), for those it is."""
    wrong: dict[str, WrongSize] = {}
    groups: dict[tuple[Any, ...], list[PendingPod]] = {}
    for item in gated:
        group_key = (item.owner or item.pod.key, requirement_key(item.pod.requirement))
        groups.setdefault(group_key, []).append(item.pod)
    messages: dict[str, str] = {}
    for members in groups.values():
        plan = simulate(members, offers, config, backed_off=backed_off)
        by_key = {member.key: member for member in members}
        counts: dict[tuple[str, str], int] = {}
        for node in plan.new_nodes:
            pair = (node.offer.name, str(node.offer.category))
            counts[pair] = counts.get(pair, 0) + 1
        for node in plan.new_nodes:
            offer = node.offer
            count = counts[(offer.name, str(offer.category))]
            text = (
                f"Estimated cost ${offer.price:.6f}/hr for node type {offer.name} ({offer.category}); "
                f"estimated node count {count}"
            )
            found = wrong_size(offer.instance, (by_key[key].requirement for key in node.pods))
            for key in node.pods:
                messages[key] = text
                if found is not None:
                    wrong[key] = found
        for key, reason in plan.unschedulable.items():
            messages[key] = f"No node type found: {reason}"
    return messages, wrong

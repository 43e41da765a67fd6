"""Reference solver: the simplest correct planner, the baseline every ratio is measured against.

First-fit decreasing, one pod at a time, under the same rules Gibbous obeys (the
configured architectures, the pod's zone selector, GPU nodes only for GPU pods):
pods sorted by dominant share, each put on the first open node of its zone group with
room, else on a new node of the cheapest-per-vCPU type that holds it.
"""

from __future__ import annotations

from gibbous.core import keys
from gibbous.core.choice.selection import Offer
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.podmodel.resources import Resources


def reference_ffd(
    pods: list[PendingPod], offers: list[Offer], architectures: tuple[str, ...] = ("amd64",)
) -> list[tuple[Offer, list[str]]]:
    usable = [
        o for o in offers if str(o.category) == "on-demand" and o.instance.arch in architectures
    ]

    def cheapest_for(requests: Resources, zone: str | None) -> Offer:
        fitting = [
            o
            for o in usable
            if requests.fits_in(o.allocatable)
            and (o.instance.gpu_count > 0) == (requests.gpus > 0)
            and (zone is None or not o.instance.zones or zone in o.instance.zones)
        ]
        return min(fitting, key=lambda o: (o.price / o.instance.vcpu, o.price, o.name))

    def share(pod: PendingPod) -> float:
        r = pod.requirement.requests
        return max(r.cpu_millis / 4000, r.memory_bytes / (16 * 2**30))

    groups: dict[str | None, list[PendingPod]] = {}
    for pod in pods:
        allowed = pod.requirement.affinity.allowed_values(keys.ZONE)
        groups.setdefault(min(allowed) if allowed else None, []).append(pod)
    out: list[tuple[Offer, list[str]]] = []
    for zone, members in sorted(groups.items(), key=lambda item: item[0] or ""):
        nodes: list[tuple[Offer, list[str], list[Resources]]] = []
        for pod in sorted(members, key=lambda p: (-share(p), p.key)):
            requests = pod.requirement.requests
            for offer, names, free in nodes:
                if requests.fits_in(free[0]) and (offer.instance.gpu_count > 0) == (
                    requests.gpus > 0
                ):
                    free[0] = free[0] - requests
                    names.append(pod.key)
                    break
            else:
                offer = cheapest_for(requests, zone)
                nodes.append((offer, [pod.key], [offer.allocatable - requests]))
        out.extend((offer, names) for offer, names, _ in nodes)
    return out

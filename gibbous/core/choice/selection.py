"""What to buy: the (instance type, price category) offers that satisfy a pod,
cheapest first.

Order: estimated $/hr ascending; at equal price on-demand before spot (same
cost, no interruption risk), then fewer GPUs, fewer vCPUs, less memory, and
the instance type name, so the choice is deterministic.

Filters run in a fixed order (`STAGES`); when one leaves nothing, the result
says which, so a user learns what to relax.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from gibbous.core import keys
from gibbous.core.choice.catalog import InstanceType, allocatable, node_allocatable
from gibbous.core.choice.daemonsets import DaemonSetPod, daemonset_overhead, registered_taints
from gibbous.core.choice.machinelabels import (
    cloud_label_note,
    cloud_labels,
    is_machine_key,
    machine_labels,
    written_machine_labels,
)
from gibbous.core.choice.ownership import install_owner
from gibbous.core.grammar.quantity import format_cpu, format_gib
from gibbous.core.podmodel.affinity import NodeAffinity, Requirement
from gibbous.core.podmodel.constraints import InstanceConstraints, PriceCategory
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config


@dataclass(frozen=True, slots=True)
class Offer:
    instance: InstanceType
    category: PriceCategory
    price: float
    allocatable: Resources

    @property
    def name(self) -> str:
        return self.instance.name

    def sort_key(self) -> tuple[float, int, int, float, int, str]:
        return (
            self.price,
            self.category is PriceCategory.SPOT,
            self.instance.gpu_count,
            self.instance.vcpu,
            self.instance.memory_bytes,
            self.instance.name,
        )

    def describe(self) -> str:
        return f"{self.instance.name} ({self.category}, ${self.price:.4f}/hr)"


def build_offers(
    types: Iterable[InstanceType],
    config: Config,
    daemonsets: Sequence[DaemonSetPod] | None = None,
) -> list[Offer]:
    """Every type in both price categories, cheapest first. Each offer's allocatable
    leaves room for the `daemonsets` whose pods would run on its node (its labels and
    taints decide which); None (the cluster's DaemonSets are not known, as in `gibbous
    estimate`) leaves the configured `nodeOverhead.daemonSet*` instead."""
    offers = []
    for instance in types:
        configured_room = node_allocatable(instance, config)
        for category in (PriceCategory.ON_DEMAND, PriceCategory.SPOT):
            if category is PriceCategory.SPOT and not instance.spot_offered:
                continue
            price = instance.price(category, config.spot_price_ratio)
            offer = Offer(instance, category, price, configured_room)
            if daemonsets is not None:
                offer = _with_daemonsets(offer, config, daemonsets)
            offers.append(offer)
    offers.sort(key=Offer.sort_key)
    return offers


def _with_daemonsets(offer: Offer, config: Config, daemonsets: Sequence[DaemonSetPod]) -> Offer:
    used = daemonset_overhead(
        matching_labels(offer, config),
        registered_taints(offer.instance, offer.category),
        daemonsets,
    )
    room = allocatable(
        offer.instance, config.node_overhead, config.nvidia_gpu_time_slices, daemonsets=used
    )
    return replace(offer, allocatable=room)


# Labels Gibbous sets on the nodes it creates; requirements on these keys are
# decided by the offer. Other keys are only satisfiable with placeNodeSelector.
CONTROLLED_LABELS = frozenset(
    {
        keys.INSTANCE_TYPE,
        keys.INSTANCE_TYPE_BETA,
        keys.ARCH,
        keys.ARCH_BETA,
        keys.OS,
        keys.HOSTNAME,  # the kubelet's, never a label Gibbous could give a new node
        keys.ZONE,
        keys.ZONE_BETA,
        keys.REGION,
        keys.CAPACITY_TYPE,
        keys.CREATED_BY,
        keys.PLACEMENT,
        keys.GPU_SKU,
        keys.GPU_COUNT,
        keys.INSTANCE_FAMILY,
        keys.CATALOG_TYPE,
        keys.KARPENTER_CAPACITY_TYPE,
        keys.GKE_SPOT,
        keys.AKS_SCALESET_PRIORITY,
        keys.EKS_CAPACITY_TYPE,
        keys.GKE_GPU_SHARING_STRATEGY,
        keys.GKE_MAX_SHARED_CLIENTS,
    }
)


def offer_labels(offer: Offer, config: Config, zone: str | None = None) -> dict[str, str]:
    """Labels a node created for `offer` carries (placement and pod uid are added by the caller)."""
    instance = offer.instance
    spot = offer.category is PriceCategory.SPOT
    labels = {
        keys.INSTANCE_TYPE: instance.machine_type,
        keys.INSTANCE_TYPE_BETA: instance.machine_type,
        keys.ARCH: instance.arch,
        keys.ARCH_BETA: instance.arch,
        keys.OS: "linux",
        keys.REGION: instance.region,
        keys.CAPACITY_TYPE: str(offer.category),
        keys.KARPENTER_CAPACITY_TYPE: str(offer.category),
        keys.CREATED_BY: keys.CREATED_BY_VALUE,
        keys.OWNER: install_owner(config),
        keys.INSTANCE_FAMILY: instance.family,
        keys.CATALOG_TYPE: instance.label_value,
        keys.PRICE_PER_HOUR: f"{offer.price:.4f}",
    }
    if zone:
        labels[keys.ZONE] = zone
        labels[keys.ZONE_BETA] = zone
    if instance.gpu_count:
        labels[keys.GPU_SKU] = instance.gpu_sku
        labels[keys.GPU_COUNT] = str(instance.gpu_count)
    if instance.cloud == "gcp" and spot:
        labels[keys.GKE_SPOT] = "true"
    if instance.cloud == "azure" and spot:
        labels[keys.AKS_SCALESET_PRIORITY] = "spot"
    if instance.cloud == "aws":
        labels[keys.EKS_CAPACITY_TYPE] = "SPOT" if spot else "ON_DEMAND"
    if instance.cloud == "gcp" and instance.gpu_count and config.nvidia_gpu_time_slices > 1:
        labels[keys.GKE_GPU_SHARING_STRATEGY] = "time-sharing"
        labels[keys.GKE_MAX_SHARED_CLIENTS] = str(config.nvidia_gpu_time_slices)
    labels.update(written_machine_labels(instance))
    return labels


def matching_labels(offer: Offer, config: Config) -> dict[str, str]:
    """The labels a pod's node selector and affinity are matched against: what Gibbous
    writes plus what the cloud and GPU Feature Discovery write once the node runs."""
    return {
        **machine_labels(offer.instance, offer.category),
        **cloud_labels(offer.instance, config),
        **offer_labels(offer, config),
    }


def is_node_property(key: str) -> bool:
    """Whether a label key is decided by the offer (type, category, zone, GPU, ...), not
    something Gibbous could copy from a pod onto its node."""
    return key in CONTROLLED_LABELS or is_machine_key(key)


def _off_node_requirements(
    affinity: NodeAffinity, named: Callable[[Requirement], bool]
) -> list[str]:
    """The pod's requirements on keys the offer does not decide (not zone, not a node
    property) that `named` picks, written `key operator values`."""
    return sorted(
        {
            f"{r.key} {r.operator} {','.join(r.values)}".strip()
            for term in affinity.terms
            for r in term
            if r.key not in (keys.ZONE, keys.ZONE_BETA) and not is_node_property(r.key) and named(r)
        }
    )


def _foreign_keys(affinity: NodeAffinity) -> list[str]:
    return _off_node_requirements(affinity, lambda r: r.operator in ("In", "Exists"))


def _unplaceable(affinity: NodeAffinity) -> list[str]:
    return _off_node_requirements(affinity, lambda r: not _placeable(r))


def foreign_label_note(affinity: NodeAffinity, config: Config) -> str:
    """Why a pod selecting labels no new node carries gets nothing, naming them and the
    option, or "" (with placeNodeSelector, single-value `In` labels are put on the node)."""
    if config.place_node_selector:
        named = _unplaceable(affinity)
        if not named:
            return ""
        return (
            f"; the pod's required affinity asks for {'; '.join(named)}, which Gibbous cannot "
            "put on a new node (placeNodeSelector places only a key `In` one value)"
        )
    named = _foreign_keys(affinity)
    if not named:
        return ""
    return (
        f"; the pod's node selector or required affinity asks for {'; '.join(named)}, "
        "labels Gibbous does not put on new nodes unless placeNodeSelector=true"
    )


def candidate_zones(instance: InstanceType, config: Config) -> tuple[str, ...] | None:
    """Zones a node of this type can be placed in; None when nothing restricts it."""
    if instance.zones and config.zones:
        return tuple(z for z in instance.zones if z in config.zones)
    return instance.zones or config.zones or None


@dataclass(frozen=True)
class PodRequirement:
    """What one pod needs from the node it would get."""

    requests: Resources
    constraints: InstanceConstraints = field(default_factory=InstanceConstraints)
    offerings: frozenset[PriceCategory] = frozenset({PriceCategory.ON_DEMAND})
    affinity: NodeAffinity = field(default_factory=lambda: NodeAffinity(()))

    def describe_needs(self) -> str:
        parts = [f">= {format_cpu(self.requests.cpu_millis)} CPU"]
        if self.requests.memory_bytes:
            parts.append(f"{format_gib(self.requests.memory_bytes)} memory")
        if self.requests.gpus:
            parts.append(f"{self.requests.gpus} nvidia.com/gpu")
        return ", ".join(parts)


def _affinity_admits(
    affinity: NodeAffinity,
    labels: Mapping[str, str],
    zones: tuple[str, ...] | None,
    place_node_selector: bool,
) -> bool:
    if not affinity.terms:
        return True
    return any(_term_admits(term, labels, zones, place_node_selector) for term in affinity.terms)


def _placeable(requirement: Requirement) -> bool:
    """Whether Gibbous can make a new node meet `requirement` on a key it does not set
    itself: put the one value an `In` names, or leave the key off (`NotIn`,
    `DoesNotExist`). `Exists`, several `In` values, `Gt` and `Lt` leave the value to
    choose, and Gibbous does not invent one (docs/decisions.md)."""
    if requirement.operator == "In":
        return len(requirement.values) == 1
    return requirement.operator in ("NotIn", "DoesNotExist")


def _term_labels(term: tuple[Requirement, ...]) -> dict[str, str]:
    return {
        r.key: r.values[0]
        for r in term
        if r.operator == "In"
        and len(r.values) == 1
        and r.key not in (keys.ZONE, keys.ZONE_BETA)
        and not is_node_property(r.key)
    }


def _term_admits(
    term: tuple[Requirement, ...],
    labels: Mapping[str, str],
    zones: tuple[str, ...] | None,
    place: bool,
) -> bool:
    placed = {**labels, **_term_labels(term)} if place else labels
    for requirement in term:
        if requirement.key in (keys.ZONE, keys.ZONE_BETA):
            if zones is None:  # the node can be put in whatever zone is asked for
                if requirement.operator not in ("In", "Exists", "NotIn"):
                    return False
            elif not any(requirement.matches({**labels, requirement.key: z}) for z in zones):
                return False
        elif is_node_property(requirement.key) or not place:
            if not requirement.matches(labels):
                return False
        elif not _placeable(requirement) or not requirement.matches(placed):
            return False
    return True


def labels_to_place(affinity: NodeAffinity, offer: Offer, config: Config) -> dict[str, str]:
    """With placeNodeSelector, the labels a new node for `offer` gets so that it meets the
    pod's required affinity (the nodeSelector is part of every term): those of the first
    term the node can meet; kube-scheduler needs only one term to hold."""
    if not config.place_node_selector:
        return {}
    labels = matching_labels(offer, config)
    zones = candidate_zones(offer.instance, config)
    for term in affinity.terms:
        if _term_admits(term, labels, zones, place=True):
            return _term_labels(term)
    return {}


def _architecture_default(affinity: NodeAffinity, config: Config) -> frozenset[str] | None:
    """Pods that say nothing about the CPU architecture get the configured ones."""
    keys_named = affinity.keys()
    if keys.ARCH in keys_named or keys.ARCH_BETA in keys_named:
        return None
    return frozenset(config.architectures)


@dataclass(frozen=True)
class CandidateResult:
    offers: tuple[Offer, ...]
    reason: str = ""  # set when `offers` is empty

    def __bool__(self) -> bool:
        return bool(self.offers)


Stage = tuple[str, Callable[[Offer], bool]]


def candidate_offers(
    requirement: PodRequirement,
    offers: list[Offer],
    config: Config,
    *,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
    gpu_budget: int | None = None,
) -> CandidateResult:
    """Offers that satisfy `requirement`, cheapest first, or the reason none does."""
    constraints = requirement.constraints
    requests = requirement.requests
    remaining = offers
    for label, admits in requirement_stages(requirement, config):
        kept = [o for o in remaining if admits(o)]
        if not kept:
            return CandidateResult((), _reason(requirement, label, remaining, config))
        remaining = kept

    if requests.gpus == 0:
        # Never spend GPU money on a pod that needs none, while a plain type fits.
        plain = [o for o in remaining if o.instance.gpu_count == 0]
        remaining = plain or remaining
    if constraints.max_cost_per_hour is not None:
        cap = constraints.max_cost_per_hour
        kept = [o for o in remaining if o.price <= cap + 1e-9]
        if not kept:
            cheapest = remaining[0]
            return CandidateResult(
                (),
                _headline(requirement)
                + f": every fitting offer costs more than ${cap:g}/hr (cheapest: {cheapest.describe()})",
            )
        remaining = kept
    if gpu_budget is not None and requests.gpus:
        kept = [o for o in remaining if o.instance.gpu_count <= gpu_budget]
        if not kept:
            return CandidateResult(
                (),
                _headline(requirement)
                + f": clusterGPULimit leaves room for {gpu_budget} more GPU(s); "
                f"the smallest fitting type has {min(o.instance.gpu_count for o in remaining)}",
            )
        remaining = kept
    if backed_off:
        kept = [o for o in remaining if (o.instance.name, str(o.category)) not in backed_off]
        if not kept:
            names = ", ".join(o.describe() for o in remaining[:3])
            return CandidateResult(
                (),
                _headline(requirement)
                + f": every fitting offer is backed off after launch failures ({names})",
            )
        remaining = kept
    return CandidateResult(tuple(remaining))


def requirement_stages(requirement: PodRequirement, config: Config) -> list[Stage]:
    """The rules an offer must meet for the pod, in the order they are applied (the first
    one that rules every remaining offer out is the reason given); each (label, test)."""
    constraints = requirement.constraints
    requests = requirement.requests
    arch_default = _architecture_default(requirement.affinity, config)
    label_cache: dict[int, tuple[dict[str, str], tuple[str, ...] | None]] = {}

    def labels_of(offer: Offer) -> tuple[dict[str, str], tuple[str, ...] | None]:
        cached = label_cache.get(id(offer))
        if cached is None:
            cached = (matching_labels(offer, config), candidate_zones(offer.instance, config))
            label_cache[id(offer)] = cached
        return cached

    def affinity_ok(offer: Offer) -> bool:
        labels, zones = labels_of(offer)
        if zones == ():
            return False
        if arch_default is not None and offer.instance.arch not in arch_default:
            return False
        return _affinity_admits(requirement.affinity, labels, zones, config.place_node_selector)

    stages: list[Stage] = [
        (
            "offerings " + ",".join(sorted(requirement.offerings)),
            lambda o: o.category in requirement.offerings,
        ),
        ("the pod's node selector and affinity (architecture, zone, labels)", affinity_ok),
    ]
    if constraints.gpu_skus is not None:
        skus = constraints.gpu_skus
        stages.append(
            (f"GPU SKU in {'/'.join(sorted(skus))}", lambda o: o.instance.gpu_sku in skus)
        )
    if constraints.max_gpus is not None:
        most = constraints.max_gpus
        stages.append((f"at most {most} GPUs", lambda o: o.instance.gpu_count <= most))
    if constraints.families_included is not None:
        included = constraints.families_included
        stages.append(
            ("family in " + ",".join(sorted(included)), lambda o: o.instance.family in included)
        )
    if constraints.families_excluded:
        excluded = constraints.families_excluded
        stages.append(
            (
                "family not in " + ",".join(sorted(excluded)),
                lambda o: o.instance.family not in excluded,
            )
        )
    if constraints.type_pattern is not None:
        pattern = constraints.type_pattern
        stages.append(
            (f"type matching {pattern.source!r}", lambda o: pattern.search(o.instance.name))
        )
    stages.append((f"room for {requests.summary()}", lambda o: requests.fits_in(o.allocatable)))
    return stages


def _headline(requirement: PodRequirement) -> str:
    skus = requirement.constraints.gpu_skus
    what = "/".join(sorted(skus)) + " type" if skus else "instance type"
    extras = [
        p
        for p in requirement.constraints.describe()
        if not p.startswith("GPU ") and not p.startswith("offerings")
    ]
    tail = (" " + ", ".join(extras)) if extras else ""
    return f"no {what} with {requirement.describe_needs()}{tail}"


def _written(requirement: Requirement) -> str:
    return f"{requirement.key} {requirement.operator} {','.join(requirement.values)}".strip()


def _catalog_note(requirement: Requirement, offers: Sequence[Offer], config: Config) -> str:
    """What the catalog has instead, when a requirement on a key it decides finds nothing:
    the zones of the region, or the values its types carry for a machine label; for a
    label the cloud puts on nodes, why this cloud's nodes will not carry it."""
    cloud_note = cloud_label_note(NodeAffinity(((requirement,),)), config)
    if cloud_note:
        return cloud_note
    if requirement.key in (keys.ZONE, keys.ZONE_BETA):
        zones = sorted({z for o in offers for z in candidate_zones(o.instance, config) or ()})
        where = f"{config.cloud} {config.effective_region}"
        if not zones:
            return f"; the catalog lists no zones for {where}"
        return f"; not a zone of {where} (its zones: {', '.join(zones)})"
    if not is_node_property(requirement.key):
        return ""
    carried = sorted(
        {
            labels[requirement.key]
            for o in offers
            if requirement.key in (labels := matching_labels(o, config))
        }
    )
    if requirement.operator != "In":
        return ""
    wanted = "/".join(requirement.values)
    if not carried:
        return f"; the catalog has no {wanted} types (no type in it carries {requirement.key})"
    shown = ", ".join(carried[:8]) + (", ..." if len(carried) > 8 else "")
    return f"; the catalog has no {wanted} types (it has {shown})"


def affinity_unmet(affinity: NodeAffinity, offers: Sequence[Offer], config: Config) -> str:
    """The first requirement of the pod's node selector and required affinity that no offer
    meets, named with what the catalog has instead, or "" when each requirement alone is
    met by some offer (then only their combination fails). With several terms (ORed),
    each term's first unmet requirement is named."""
    arch_default = _architecture_default(affinity, config)
    if arch_default is not None and not any(o.instance.arch in arch_default for o in offers):
        return (
            f"no type of architecture {'/'.join(sorted(arch_default))} (the architectures "
            "option; the pod names none)"
        )
    found = []
    for term in affinity.terms:
        for requirement in term:
            alone = NodeAffinity(((requirement,),))
            if not any(
                candidate_zones(o.instance, config) != ()
                and _affinity_admits(
                    alone,
                    matching_labels(o, config),
                    candidate_zones(o.instance, config),
                    config.place_node_selector,
                )
                for o in offers
            ):
                found.append(
                    f"no type meets {_written(requirement)}"
                    + _catalog_note(requirement, offers, config)
                )
                break
        else:
            return ""  # this term's requirements are each met: their combination is not
    return "; or ".join(found)


def room_unmet(requests: Resources, offers: Sequence[Offer]) -> str:
    """Requested extended resources (hugepages, devices) that no offer has any of, named,
    or "": no type is short of them by a little, the catalog lacks them."""
    missing = [
        name
        for name, amount in requests.extended
        if amount > 0 and not any(dict(o.allocatable.extended).get(name, 0) for o in offers)
    ]
    if not missing:
        return ""
    return f"no type in the catalog has {', '.join(missing)} allocatable"


def _reason(requirement: PodRequirement, stage: str, before: list[Offer], config: Config) -> str:
    if stage.startswith("room for"):
        unmet = room_unmet(requirement.requests, before)
        if unmet:
            return _headline(requirement) + f": {unmet}"
        biggest = max(before, key=lambda o: (o.allocatable.cpu_millis, o.allocatable.memory_bytes))
        short = requirement.requests.shortfalls(biggest.allocatable)
        return (
            _headline(requirement)
            + f": none of the {len({o.instance.name for o in before})} remaining types has room "
            f"(short of {', '.join(short)} even on {biggest.instance.name}, "
            f"which has {biggest.allocatable.summary()} allocatable)"
        )
    note = ""
    if stage.startswith("the pod's"):
        unmet = affinity_unmet(requirement.affinity, before, config)
        if unmet:
            return (
                _headline(requirement)
                + f": {unmet}"
                + foreign_label_note(requirement.affinity, config)
            )
        asked = sorted(
            {
                _written(r)
                for term in requirement.affinity.terms
                for r in term
                if is_machine_key(r.key)
            }
        )
        if asked:
            note = f" (it asks for {'; '.join(asked)})"
        note += foreign_label_note(requirement.affinity, config)
        note += cloud_label_note(requirement.affinity, config)
        note += _unknown_zone_note(requirement.affinity, before, config)
    return _headline(requirement) + f": no offer satisfies {stage}{note}"


def _unknown_zone_note(affinity: NodeAffinity, offers: list[Offer], config: Config) -> str:
    """Names the zones the pod asks for that no offer can be placed in (another cloud's
    zone, a misspelt one), or ""."""
    known: set[str] = set()
    for offer in offers:
        known.update(candidate_zones(offer.instance, config) or ())
    if not known:
        return ""
    asked = {
        value
        for term in affinity.terms
        for r in term
        if r.key in (keys.ZONE, keys.ZONE_BETA) and r.operator == "In"
        for value in r.values
    }
    unknown = sorted(asked - known)
    if not unknown:
        return ""
    return (
        f"; zone {', '.join(unknown)} is not a zone of {config.cloud} "
        f"{offers[0].instance.region} where nodes can be made (zones: {', '.join(sorted(known))})"
    )


def cheapest_offer_for_shape(
    offers: list[Offer],
    *,
    cpu_millis: int,
    memory_bytes: int,
    gpus: int,
    config: Config,
    categories: frozenset[PriceCategory],
    affinity: NodeAffinity,
    backed_off: frozenset[tuple[str, str]] = frozenset(),
) -> CandidateResult:
    """The bin-pack node: cheapest offer whose *capacity* meets the configured shape
    (`binPackingNode*`), its type regexp and pricing, and the pods' node affinity."""
    pattern = config.bin_pack_node_type_pattern
    arch_default = _architecture_default(affinity, config)
    slices = config.nvidia_gpu_time_slices

    def shaped(offer: Offer) -> bool:
        instance = offer.instance
        return (
            round(instance.vcpu * 1000) >= cpu_millis
            and instance.memory_bytes >= memory_bytes
            and instance.gpu_count * slices >= gpus
            and offer.allocatable.pods >= config.bin_pack_node_min_pods
            and not (gpus == 0 and instance.gpu_count)
        )

    def placed(offer: Offer) -> bool:
        zones = candidate_zones(offer.instance, config)
        return (
            (arch_default is None or offer.instance.arch in arch_default)
            and zones != ()
            and _affinity_admits(
                affinity, matching_labels(offer, config), zones, config.place_node_selector
            )
        )

    spec = f">= {format_cpu(cpu_millis)} vCPU, {format_gib(memory_bytes)}, {gpus} GPU(s)" + (
        f", >= {config.bin_pack_node_min_pods} pods" if config.bin_pack_node_min_pods else ""
    )
    stages: list[Stage] = [
        (f"pricing {','.join(sorted(categories))}", lambda o: o.category in categories),
        (f"the binPackingNode shape ({spec})", shaped),
    ]
    if pattern is not None:
        stages.append(
            (f"type matching {pattern.source!r}", lambda o: bool(pattern.search(o.instance.name)))
        )
    stages.append(("the pods' node selector and affinity", placed))
    stages.append(
        ("not backed off", lambda o: (o.instance.name, str(o.category)) not in backed_off)
    )
    kept = list(offers)
    for label, admits in stages:
        before, kept = kept, [o for o in kept if admits(o)]
        if kept:
            continue
        why = affinity_unmet(affinity, before, config) if admits is placed else ""
        return CandidateResult(
            (),
            "no instance type meets the bin-pack node spec: "
            + (why or f"none of the {len(before)} offers left passes {label}")
            + foreign_label_note(affinity, config),
        )
    return CandidateResult(tuple(kept))

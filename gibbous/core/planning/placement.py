"""Where a pod may go among existing nodes, and how good each node is: the
scheduler extender's decisions, as pure functions over Pod and Node objects.

Filter (managed pods only; others pass untouched):
  1. Hot-node mitigation: a node tainted `gibbous.dev/hot-node=hot` takes no
     managed pod, one tainted `warm` takes no new bin-pack pod (transient).
  2. Placement classes: bin-pack pods never go to bin-select nodes; bin-select
     pods go to the node made for them, or (node reuse) to another bin-select
     node, never to a Gibbous bin-pack node. A bin-select node made for a pod
     that is still pending is reserved for it (transient). Nodes Gibbous did not
     create are eligible for both classes.
  3. Constraints: the node's instance type, price category, $/hr, GPU SKU and
     count and family must satisfy the pod's annotations (permanent). On nodes
     Gibbous did not create, what the labels do not say is not held against
     the pod, their price counts as zero (already paid for), and only an
     explicit instance-offerings annotation restricts the price category.

Score, 0..10 (MaxExtenderPriority), deterministic:
  * bin-select pod on the node made for it: 10;
  * otherwise round(10 x (0.7 x utilisation after placement + 0.3 x cheapness))
    minus 3 when the node's observed utilisation (annotation
    `gibbous.dev/observed-utilization`, written by hot-node mitigation) is within
    10 points of the yellow thresholds, clamped to 0..10.
    Utilisation after placement = mean of the CPU and memory request fractions
    (each capped at 1); cheapness = the lowest price per allocatable vCPU among
    the candidates / this node's (1 for the cheapest; nodes Gibbous did not
    create, or without a price, count as already paid for: 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.catalog import name_from_label
from gibbous.core.choice.classify import Placement, classify, offerings_for
from gibbous.core.errors import GibbousError, quoted
from gibbous.core.grammar.numerals import parse_decimal, parse_whole
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.podmodel.affinity import pod_node_affinity
from gibbous.core.podmodel.constraints import (
    InstanceConstraints,
    PriceCategory,
    ignored_by_opt_out,
    parse_constraints,
)
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    as_map,
    condition_is_true,
    labels_of,
    metadata,
    pod_requests,
    uid_of,
)
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

OBSERVED_UTILIZATION = "gibbous.dev/observed-utilization"
WARM_MARGIN = 10.0


@dataclass(frozen=True)
class NodeView:
    """What placement needs to know about a Node, read from its labels, taints and status."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    allocatable: Resources
    created_by_gibbous: bool
    placement: Placement | None
    assigned_pod_uid: str
    instance_type: str
    category: PriceCategory | None
    price_per_hour: float | None
    gpu_sku: str
    gpu_count: int | None
    family: str
    observed_cpu: float | None
    observed_memory: float | None
    hot_taint: str = ""
    # What could not be read (e.g. `label gibbous.dev/price-per-hour: 'inf' is not a
    # decimal`): the view goes on without it, and the shells report it once per version.
    problems: tuple[str, ...] = ()
    # Derived once when the view is built (node views are cached per node version):
    signature: tuple[object, ...] = ()
    unit_price: float = 0.0  # $/hr per allocatable vCPU; 0 for nodes already paid for
    ready: bool = False  # condition Ready is True
    unschedulable: bool = False  # cordoned
    created_at: float | None = None  # metadata.creationTimestamp, seconds since the epoch


def normalize_gpu_sku(text: str) -> str:
    """`NVIDIA-A10G` -> `A10G`, `Tesla-T4-SHARED` -> `T4`, `nvidia-tesla-a100` -> `A100`,
    `A100-SXM4-40GB` -> `A100`: the names GFD and GKE put on nodes, as SKUs."""
    name = text.strip().upper().replace("_", "-")
    for prefix in ("NVIDIA-TESLA-", "NVIDIA-", "TESLA-"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.split("-")[0]


def _capacity_category(labels: Mapping[str, str]) -> PriceCategory | None:
    for key, spot in (
        (keys.CAPACITY_TYPE, "spot"),
        (keys.KARPENTER_CAPACITY_TYPE, "spot"),
        (keys.EKS_CAPACITY_TYPE, "SPOT"),
        (keys.AKS_SCALESET_PRIORITY, "spot"),
    ):
        if key in labels:
            return PriceCategory.SPOT if labels[key] == spot else PriceCategory.ON_DEMAND
    if (
        labels.get(keys.GKE_SPOT) == "true"
        or labels.get("cloud.google.com/gke-preemptible") == "true"
    ):
        return PriceCategory.SPOT
    return None


def _observed(text: object, problems: list[str]) -> dict[str, float]:
    """`cpu=61.0,memory=40.5` (what hot-node mitigation writes) -> percentages by resource."""
    if not text:
        return {}
    out: dict[str, float] = {}
    if isinstance(text, str) and len(text) <= 64:
        for part in text.split(","):
            name, _, number = part.partition("=")
            value = parse_decimal(number)
            if name not in ("cpu", "memory") or value is None or name in out:
                out.clear()
                break
            out[name] = value
        if out:
            return out
    problems.append(
        f"annotation {OBSERVED_UTILIZATION}: {quoted(text)} is not of the form "
        "cpu=61.0,memory=40.5; ignored"
    )
    return {}


def _string_labels(raw: object, problems: list[str]) -> dict[str, str]:
    labels = as_map(raw)
    if all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return dict(labels)
    problems.append("labels that are not strings were ignored")
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


# How callers that judge many nodes get their views: `viewer(config)` builds each anew;
# the shells pass a cache of views kept per node version instead.
NodeViewer = Callable[[Mapping[str, Any]], NodeView]


def viewer(time_slices: int) -> NodeViewer:
    return lambda node: node_view(node, time_slices=time_slices)


def node_view(node: Mapping[str, Any], *, time_slices: int = 1) -> NodeView:
    view = _read_node(node, time_slices)
    unit = (
        view.price_per_hour / (view.allocatable.cpu_millis / 1000)
        if view.created_by_gibbous
        and view.price_per_hour is not None
        and view.allocatable.cpu_millis > 0
        else 0.0
    )
    return replace(view, signature=_signature(view), unit_price=unit, **_state(node))


def _state(node: Mapping[str, Any]) -> dict[str, Any]:
    """Readiness, cordon and age: read once per node version, like the rest of the view."""
    stamp = metadata(node).get("creationTimestamp")
    return {
        "ready": condition_is_true(node, "Ready"),
        "unschedulable": bool(as_map(node.get("spec")).get("unschedulable")),
        "created_at": epoch_seconds(stamp) if isinstance(stamp, str) else None,
    }


def unreadable_node_view(node: Mapping[str, Any], why: str) -> NodeView:
    """The view of a node nothing could be read from: no class, no capacity, no price, so
    placement judges it like a node Gibbous did not create and has no room on it."""
    name = metadata(node).get("name")
    try:
        state = _state(node)
    except Exception:
        state = {}
    return NodeView(
        name=name if isinstance(name, str) else "",
        labels={},
        taints=(),
        allocatable=Resources(),
        created_by_gibbous=False,
        placement=None,
        assigned_pod_uid="",
        instance_type="",
        category=None,
        price_per_hour=None,
        gpu_sku="",
        gpu_count=None,
        family="",
        observed_cpu=None,
        observed_memory=None,
        problems=(why,),
        **state,
    )


def _read_node(node: Mapping[str, Any], time_slices: int) -> NodeView:
    """Total: whatever a Node holds, a view comes back; what could not be read is left out
    (zero allocatable, no price, no observed utilisation) and named in `problems`."""
    problems: list[str] = []
    meta = metadata(node)
    labels = _string_labels(meta.get("labels"), problems)
    spec = as_map(node.get("spec"))
    status = as_map(node.get("status"))
    raw_taints = spec.get("taints")
    taints = (
        tuple(t for t in raw_taints if isinstance(t, Mapping))
        if isinstance(raw_taints, list)
        else ()
    )
    try:
        allocatable = Resources.from_resource_list(
            as_map(status.get("allocatable")), "status.allocatable"
        )
    except GibbousError as error:
        problems.append(f"{error}; the node is taken to have nothing allocatable")
        allocatable = Resources()
    created = labels.get(keys.CREATED_BY) == keys.CREATED_BY_VALUE
    placement_label = labels.get(keys.PLACEMENT)
    placement = (
        Placement(placement_label)
        if created and placement_label in ("bin-pack", "bin-select")
        else None
    )
    price_text = labels.get(keys.PRICE_PER_HOUR)
    price = parse_decimal(price_text) if price_text else None
    if price_text and price is None:
        problems.append(
            f"label {keys.PRICE_PER_HOUR}: {quoted(price_text)} is not a decimal number of "
            "dollars per hour; the node is taken to have no price"
        )
    sku = (
        labels.get(keys.GPU_SKU)
        or labels.get("nvidia.com/gpu.product")
        or labels.get("cloud.google.com/gke-accelerator")
        or labels.get("karpenter.k8s.aws/instance-gpu-name")
        or ""
    )
    count_text = (
        labels.get(keys.GPU_COUNT)
        or labels.get("nvidia.com/gpu.count")
        or labels.get("karpenter.k8s.aws/instance-gpu-count")
        or ""
    )
    labelled_count = parse_whole(count_text) if count_text else None
    if count_text and labelled_count is None:
        problems.append(f"GPU count label {quoted(count_text)} is not a whole number; ignored")
    gpu_count = (
        labelled_count
        if labelled_count is not None
        else (
            allocatable.gpus // max(1, time_slices)
            if allocatable.gpus
            else (0 if created else None)
        )
    )
    instance_type = (
        name_from_label(labels.get(keys.CATALOG_TYPE, ""))
        or labels.get(keys.INSTANCE_TYPE)
        or labels.get(keys.INSTANCE_TYPE_BETA)
        or ""
    )
    observed = _observed(as_map(meta.get("annotations")).get(OBSERVED_UTILIZATION), problems)
    hot = next(
        (str(t.get("value") or "") for t in taints if t.get("key") == keys.HOT_NODE_TAINT), ""
    )
    return NodeView(
        hot_taint=hot,
        problems=tuple(problems),
        name=str(meta.get("name") or ""),
        labels=labels,
        taints=taints,
        allocatable=allocatable,
        created_by_gibbous=created,
        placement=placement,
        assigned_pod_uid=labels.get(keys.ASSIGNED_POD_UID, ""),
        instance_type=instance_type,
        category=_capacity_category(labels),
        price_per_hour=price,
        gpu_sku=normalize_gpu_sku(sku) if sku else "",
        gpu_count=gpu_count,
        family=labels.get(keys.INSTANCE_FAMILY)
        or labels.get("karpenter.k8s.aws/instance-family")
        or (instance_type.split(".")[0].lower() if "." in instance_type else ""),
        observed_cpu=observed.get("cpu"),
        observed_memory=observed.get("memory"),
    )


@dataclass(frozen=True)
class PodFacts:
    """The pod as placement sees it; `None` constraints means they could not be parsed."""

    uid: str
    placement: Placement
    requests: Resources
    constraints: InstanceConstraints
    offerings: frozenset[PriceCategory]


def pod_facts(pod: Pod, config: Config) -> PodFacts:
    """Class from the webhook's label when present (it saw VPA's requests), else computed."""
    pod_annotations = annotations_of(pod)
    requests = pod_requests(pod)
    label = labels_of(pod).get(keys.PLACEMENT)
    placement = (
        Placement(label)
        if label in ("bin-pack", "bin-select")
        else classify(requests, pod_annotations, config).placement
    )
    constraints = parse_constraints(pod_annotations)
    offerings = offerings_for(constraints.offerings, placement, config, pod_node_affinity(pod))
    return PodFacts(uid_of(pod), placement, requests, constraints, offerings)


@dataclass(frozen=True)
class Verdict:
    node: str
    ok: bool
    reason: str = ""
    permanent: bool = False


def _constraint_mismatch(facts: PodFacts, node: NodeView) -> str:
    """Why the pod's annotations rule the node out, in the pod's terms: the reason reaches
    whoever called the extender and the pod's events, so it names the pod's limit, not the
    node's instance type, GPU model, family or price (issue #32: a caller could read them
    by naming nodes). Nodes that differ only there also share one event line."""
    constraints = facts.constraints
    category = node.category or PriceCategory.ON_DEMAND
    # Default offerings govern the nodes Gibbous buys; on other nodes only an
    # explicit instance-offerings annotation restricts the pod.
    explicit = constraints.offerings is not None
    if (node.created_by_gibbous or explicit) and category not in facts.offerings:
        return f"node is {category}, pod allows {','.join(sorted(facts.offerings))}"
    if constraints.type_pattern is not None:
        if node.instance_type and not constraints.type_pattern.search(node.instance_type):
            return f"instance type does not match {constraints.type_pattern.source!r}"
        if not node.instance_type and node.created_by_gibbous:
            return "node has no instance-type label"
    if (
        constraints.gpu_skus is not None
        and node.gpu_sku
        and node.gpu_sku not in constraints.gpu_skus
    ):
        return f"GPU model not in {'/'.join(sorted(constraints.gpu_skus))}"
    if (
        constraints.max_gpus is not None
        and node.gpu_count is not None
        and node.gpu_count > constraints.max_gpus
    ):
        return f"node has more GPUs than the pod allows ({constraints.max_gpus})"
    if node.family:
        if (
            constraints.families_included is not None
            and node.family not in constraints.families_included
        ):
            return "instance family not among the pod's included families"
        if node.family in constraints.families_excluded:
            return "instance family excluded by the pod"
    if (
        constraints.max_cost_per_hour is not None
        and node.created_by_gibbous
        and node.price_per_hour is not None
        and node.price_per_hour > constraints.max_cost_per_hour + 1e-9
    ):
        return f"node costs more than the pod allows (${constraints.max_cost_per_hour:g}/hr)"
    return ""


def filter_node(
    facts: PodFacts, node: NodeView, *, reserved_for_pending: Callable[[str], bool]
) -> Verdict:
    hot = node.hot_taint
    if hot == keys.HOT_NODE_HOT:
        return Verdict(node.name, False, "gibbous: node is hot")
    if hot == keys.HOT_NODE_WARM and facts.placement is Placement.BIN_PACK:
        return Verdict(node.name, False, "gibbous: node is warm")
    if facts.placement is Placement.BIN_PACK:
        if node.placement is Placement.BIN_SELECT:
            return Verdict(
                node.name, False, "gibbous: bin-select node, pod is bin-pack", permanent=True
            )
    else:
        if node.placement is Placement.BIN_PACK:
            return Verdict(
                node.name, False, "gibbous: bin-pack node, pod is bin-select", permanent=True
            )
        if (
            node.placement is Placement.BIN_SELECT
            and node.assigned_pod_uid
            and node.assigned_pod_uid != facts.uid
            and reserved_for_pending(node.assigned_pod_uid)
        ):
            return Verdict(node.name, False, "gibbous: node is reserved for another pending pod")
    mismatch = _constraint_mismatch(facts, node)
    if mismatch:
        return Verdict(node.name, False, f"gibbous: {mismatch}", permanent=True)
    return Verdict(node.name, True)


def _signature(node: NodeView) -> tuple[object, ...]:
    """Everything filter_node reads: nodes with equal signatures get equal verdicts."""
    return (
        node.hot_taint,
        node.placement,
        node.assigned_pod_uid,
        node.created_by_gibbous,
        node.category,
        node.instance_type,
        node.gpu_sku,
        node.gpu_count,
        node.family,
        node.price_per_hour,
    )


def filter_nodes(
    facts: PodFacts,
    nodes: Iterable[NodeView],
    *,
    node_reuse: bool,
    reserved_for_pending: Callable[[str], bool],
) -> list[Verdict]:
    """filter_node for each node; nodes that look alike are judged once (large clusters
    are mostly a few instance types)."""
    out = []
    judged: dict[tuple[object, ...], Verdict] = {}
    for node in nodes:
        signature = node.signature or _signature(node)
        known = judged.get(signature)
        if known is None:
            known = filter_node(facts, node, reserved_for_pending=reserved_for_pending)
            judged[signature] = known
        verdict = (
            known
            if known.node == node.name
            else Verdict(node.name, known.ok, known.reason, known.permanent)
        )
        if (
            verdict.ok
            and not node_reuse
            and facts.placement is Placement.BIN_SELECT
            and node.placement is Placement.BIN_SELECT
            and node.assigned_pod_uid != facts.uid
        ):
            verdict = Verdict(node.name, False, "gibbous: node reuse is off", permanent=True)
        out.append(verdict)
    return out


def judge_nodes(
    facts: PodFacts,
    nodes: Iterable[NodeView],
    *,
    node_reuse: bool,
    reserved_for_pending: Callable[[str], bool],
) -> tuple[set[str], dict[str, str], dict[str, str]]:
    """(names that pass, every rejection with its reason, the permanent ones): what the
    extender replies, without a Verdict per node."""
    passed: set[str] = set()
    rejected: dict[str, str] = {}
    permanent: dict[str, str] = {}
    judged: dict[tuple[object, ...], tuple[bool, str, bool]] = {}
    for node in nodes:
        signature = node.signature or _signature(node)
        known = judged.get(signature)
        if known is None:
            verdict = filter_nodes(
                facts, [node], node_reuse=node_reuse, reserved_for_pending=reserved_for_pending
            )[0]
            known = (verdict.ok, verdict.reason, verdict.permanent)
            judged[signature] = known
        if known[0]:
            passed.add(node.name)
        else:
            rejected[node.name] = known[1]
            if known[2]:
                permanent[node.name] = known[1]
    return passed, rejected, permanent


def score_nodes(
    facts: PodFacts,
    nodes: list[NodeView],
    used: Mapping[str, Resources],
    config: Config,
) -> list[tuple[str, int]]:
    """(node name, 0..10) for every node, in input order; see the module doc for the formula."""
    lowest = min((n.unit_price for n in nodes if n.unit_price > 0), default=0.0)
    hot = config.hot_node
    yellow_cpu = hot.yellow_cpu - WARM_MARGIN
    yellow_memory = hot.yellow_memory - WARM_MARGIN
    want_cpu = facts.requests.cpu_millis
    want_memory = facts.requests.memory_bytes
    own_uid = facts.uid if facts.placement is Placement.BIN_SELECT else ""
    out = []
    for node in nodes:
        if own_uid and node.assigned_pod_uid == own_uid:
            out.append((node.name, 10))
            continue
        busy = used.get(node.name)
        cpu = want_cpu + (busy.cpu_millis if busy is not None else 0)
        memory = want_memory + (busy.memory_bytes if busy is not None else 0)
        capacity = node.allocatable
        cpu_share = min(1.0, cpu / capacity.cpu_millis) if capacity.cpu_millis else 1.0
        memory_share = min(1.0, memory / capacity.memory_bytes) if capacity.memory_bytes else 1.0
        cheapness = lowest / node.unit_price if node.unit_price > 0 else 1.0
        if not 0.0 <= cheapness <= 1.0:  # inf/inf: a price past what floats hold
            cheapness = 0.0
        score = round(10 * (0.35 * (cpu_share + memory_share) + 0.3 * cheapness))
        observed_cpu, observed_memory = node.observed_cpu, node.observed_memory
        if (observed_cpu is not None and observed_cpu >= yellow_cpu) or (
            observed_memory is not None and observed_memory >= yellow_memory
        ):
            score -= 3
        out.append((node.name, 0 if score < 0 else 10 if score > 10 else score))
    return out


def is_managed_pod(pod: Pod, config: Config) -> bool:
    return config.designation.marks(pod) and not ignored_by_opt_out(annotations_of(pod))

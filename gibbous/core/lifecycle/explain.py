"""Why a pod is where it is, as Gibbous sees it (`gibbous explain`): whether it is
managed, its class and requests, which existing nodes could take it and the first rule
ruling out each group of the others, the instance types it would buy in price order and
the rule ruling out each other one, the back-offs and guardrails in the way, and the last
decision the autoscaler's status object and the pod's events record.

Built from the rules the autoscaler runs (intake, `describe_pod`, the extender's node
filter, the packing's node admission, the offers' stages). Pure: the cluster's objects,
the status document and the time are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.selection import (
    Offer,
    candidate_offers,
    cheapest_offer_for_shape,
    requirement_stages,
)
from gibbous.core.errors import GibbousError
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.intake import decide_intake
from gibbous.core.lifecycle.statusreport import duration, staleness
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.demand import describe_pod
from gibbous.core.planning.packingmodel import PendingPod
from gibbous.core.planning.placement import NodeView, filter_node, pod_facts
from gibbous.core.planning.podfacts import ClusterPods
from gibbous.core.podmodel.constraints import ignored_by_opt_out
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    key_of,
    node_name_of,
    spec,
    tolerates,
    uid_of,
)
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

DEFAULT_SCHEDULER = "default-scheduler"
# Labels that differ on every node: left out of a group's identity.
PER_NODE_LABELS = frozenset({keys.HOSTNAME, "kubernetes.io/hostname"})


@dataclass(frozen=True)
class ClusterView:
    """What explain reads of the cluster."""

    nodes: Sequence[NodeView]
    pods: ClusterPods  # every pod's facts: what each node has left
    offers: Sequence[Offer]  # cheapest first
    events: Sequence[Mapping[str, Any]]  # the pod's events
    status: Mapping[str, Any] | None  # the autoscaler's status document


def explain_pod(
    pod: Pod, cluster: ClusterView, config: Config, *, now: float, top: int = 5
) -> dict[str, Any]:
    """The explanation as plain JSON values; `summary` is the one-line answer."""
    out: dict[str, Any] = {"pod": key_of(pod), "uid": uid_of(pod)}
    out["autoscaler"] = {"stale": staleness(cluster.status, now) or None}
    out["managed"] = _managed(pod, config)
    intake = decide_intake(pod, config, now)
    out["intake"] = {"decision": str(intake.intake), "why": intake.reason}
    out["lastDecision"] = _last_decision(pod, cluster.status)
    out["events"] = _events(cluster.events)
    launch = _launch_for(pod, cluster.status)
    out["launchInFlight"] = launch
    bound = node_name_of(pod)
    try:
        pending = describe_pod(pod, config)[0]
    except GibbousError as error:
        out["class"] = {"error": str(error)}
        out["summary"] = f"Gibbous cannot read this pod: {error}"
        return out
    out["class"] = {
        "placement": str(pending.placement),
        "requests": pending.requirement.requests.summary(),
        "unsupported": pending.unsupported or None,
    }
    out["existingNodes"] = _existing_nodes(pod, pending, cluster, config)
    types = _instance_types(pending, cluster, config, now, top)
    out["instanceTypes"] = types
    out["summary"] = _summary(out, bound, launch, intake.reason, config)
    return out


def _managed(pod: Pod, config: Config) -> dict[str, Any]:
    scheduler = str(spec(pod).get("schedulerName") or DEFAULT_SCHEDULER)
    gibbous_scheduler = config.scheduler_name
    if scheduler == gibbous_scheduler:
        routed = f"the Gibbous scheduler {scheduler!r} places it"
    elif scheduler == DEFAULT_SCHEDULER:
        routed = "the default scheduler places it"
    else:
        routed = f"another scheduler, {scheduler!r}, places it"
    if not config.designation.marks(pod):
        return {
            "managed": False,
            "why": f"it has no {config.designation.describe()}",
            "scheduler": routed,
        }
    if ignored_by_opt_out(annotations_of(pod)):
        return {"managed": False, "why": f"it opts out with {keys.IGNORE}", "scheduler": routed}
    return {
        "managed": True,
        "why": f"it has {config.designation.describe()}",
        "scheduler": routed,
    }


def _events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The pod's events, newest first, as `at` (epoch seconds), reason, message, source."""
    out = []
    for event in events:
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        at = epoch_seconds(stamp) if isinstance(stamp, str) and stamp else None
        source = event.get("source") if isinstance(event.get("source"), Mapping) else {}
        out.append(
            {
                "at": at,
                "type": event.get("type"),
                "reason": event.get("reason"),
                "message": event.get("message"),
                "from": (source or {}).get("component") or event.get("reportingComponent"),
                "count": event.get("count") or 1,
            }
        )
    out.sort(key=lambda e: -(e["at"] or 0.0))
    return out[:10]


def _records(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _last_decision(pod: Pod, status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    uid = uid_of(pod)
    for record in _records(status.get("decisions")):
        if record.get("uid") == uid:
            return dict(record)
    return None


def _launch_for(pod: Pod, status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    key = key_of(pod)
    for record in _records(status.get("launches")):
        if key in (record.get("pods") or []):
            return dict(record)
    return None


# --- existing nodes -------------------------------------------------------------------------------


def _node_rule(
    pod: Pod, pending: PendingPod, view: NodeView, config: Config, facts_uid: str
) -> str:
    """The first rule that keeps the pod off the node, resources aside; "" when none."""
    if not view.ready:
        return "not Ready"
    if view.unschedulable:
        return "cordoned"
    for taint in view.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            list(pending.tolerations), taint
        ):
            return f"taint {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')} not tolerated"
    if not pending.requirement.affinity.matches(view.labels):
        return "node selector / affinity does not match"
    verdict = filter_node(pod_facts(pod, config), view, reserved_for_pending=lambda uid: True)
    if not verdict.ok:
        return verdict.reason.removeprefix("gibbous: ")
    if (
        pending.placement is Placement.BIN_SELECT
        and view.placement is Placement.BIN_SELECT
        and view.assigned_pod_uid != facts_uid
        and not config.bin_select_node_reuse
    ):
        return "node reuse is off"
    return ""


def _existing_nodes(
    pod: Pod, pending: PendingPod, cluster: ClusterView, config: Config
) -> dict[str, Any]:
    """Nodes grouped by (instance type, labels, taints) and by the first rule ruling them
    out: a big cluster is a few lines. Rules are judged once per group, room per node."""
    requests = pending.requirement.requests
    judged: dict[tuple[object, ...], str] = {}
    groups: dict[tuple[object, ...], dict[str, Any]] = {}
    own_node = node_name_of(pod)
    for view in cluster.nodes:
        identity = (
            view.instance_type,
            tuple(sorted((k, v) for k, v in view.labels.items() if k not in PER_NODE_LABELS)),
            tuple(sorted(str(sorted(t.items())) for t in view.taints)),
            view.ready,
            view.unschedulable,
            view.hot_taint,
            # the hostname is left out above, but a pod may select a node by it
            pending.requirement.affinity.matches(view.labels),
        )
        rule = judged.get(identity)
        if rule is None:
            rule = _node_rule(pod, pending, view, config, pending.uid)
            judged[identity] = rule
        if not rule:
            used = cluster.pods.used.get(view.name, Resources())
            if own_node == view.name:
                rule = ""
            elif not requests.fits_in(view.allocatable - used):
                short = requests.shortfalls(view.allocatable - used)
                rule = f"no room (short of {', '.join(short)})"
        group = groups.setdefault(
            (view.instance_type, identity[1], identity[2], rule),
            {
                "instanceType": view.instance_type or "(no instance-type label)",
                "createdByGibbous": view.created_by_gibbous,
                "nodes": 0,
                "examples": [],
                "ruledOutBy": rule or None,
            },
        )
        group["nodes"] += 1
        if len(group["examples"]) < 3:
            group["examples"].append(view.name)
    listed = sorted(groups.values(), key=lambda g: (g["ruledOutBy"] is not None, -g["nodes"]))
    return {
        "fit": sum(g["nodes"] for g in listed if g["ruledOutBy"] is None),
        "total": len(cluster.nodes),
        "groups": listed,
    }


# --- instance types -------------------------------------------------------------------------------


def _unmet_reason(pending: PendingPod, offers: list[Offer], config: Config) -> str:
    """The reason the planner gives (the autoscaler's event, `gibbous estimate`): a bin-pack
    pod's from the binPackingNode shape its node is bought by, a bin-select pod's from its
    own needs; both name the first requirement no type meets with the same rules."""
    if pending.placement is Placement.BIN_PACK:
        shape = cheapest_offer_for_shape(
            offers,
            cpu_millis=config.bin_pack_node_cpu_millis,
            memory_bytes=config.bin_pack_node_memory_bytes,
            gpus=config.bin_pack_node_gpus,
            config=config,
            categories=config.bin_pack_node_pricing,
            affinity=pending.requirement.affinity,
        )
        if not shape:
            return shape.reason
    return candidate_offers(pending.requirement, offers, config).reason


def _instance_types(
    pending: PendingPod, cluster: ClusterView, config: Config, now: float, top: int
) -> dict[str, Any]:
    """Each offer cheapest first: the first of the pod's rules it fails, else what stands
    between it and a launch (back-off, guardrail, the pod's price cap)."""
    requirement = pending.requirement
    stages = requirement_stages(requirement, config)
    status = cluster.status or {}
    backoffs = Backoffs.from_records(status.get("backoffs"))
    found = status.get("guardrails")
    guardrails: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    ruled_out: dict[str, int] = {}
    fitting: list[Offer] = []
    furthest = -1  # the last rule any offer reached: the one that rules out the rest
    for offer in cluster.offers:
        failed = next((i for i, (_, admits) in enumerate(stages) if not admits(offer)), None)
        if failed is None:
            fitting.append(offer)
        else:
            label = stages[failed][0]
            ruled_out[label] = ruled_out.get(label, 0) + 1
            furthest = max(furthest, failed)
    if requirement.requests.gpus == 0 and any(o.instance.gpu_count == 0 for o in fitting):
        kept = [o for o in fitting if o.instance.gpu_count == 0]
        reason = "has GPUs the pod does not need (a type without fits)"
        if len(kept) < len(fitting):
            ruled_out[reason] = len(fitting) - len(kept)
        fitting = kept
    candidates = []
    for offer in fitting:
        blocked = _in_the_way(
            offer, requirement.constraints.max_cost_per_hour, backoffs, guardrails, now
        )
        candidates.append(
            {
                "instanceType": offer.name,
                "category": str(offer.category),
                "pricePerHour": offer.price,
                "blockedBy": blocked or None,
            }
        )
    buyable = [c for c in candidates if c["blockedBy"] is None]
    out: dict[str, Any] = {
        "catalogOffers": len(cluster.offers),
        "fitting": len(fitting),
        "wouldBuy": buyable[0] if buyable else None,
        "cheapest": candidates[:top],
        "moreFitting": max(0, len(candidates) - top),
        "ruledOut": dict(sorted(ruled_out.items(), key=lambda item: -item[1])),
        "decisiveRule": stages[furthest][0] if furthest >= 0 and not fitting else None,
        # The reason the autoscaler's event and `gibbous estimate` give, from the same rule.
        # The planner's reason (the autoscaler's event, `gibbous estimate`), by the same rules.
        "reason": _unmet_reason(pending, list(cluster.offers), config) if not fitting else None,
    }
    if pending.placement is Placement.BIN_PACK:
        out["note"] = (
            "a bin-pack pod goes on a shared bin-pack node: Gibbous buys the cheapest type "
            "with the binPackingNode shape that these rules admit, not the smallest that fits"
        )
    return out


def _in_the_way(
    offer: Offer,
    price_cap: float | None,
    backoffs: Backoffs,
    guardrails: Mapping[str, Any],
    now: float,
) -> str:
    category = str(offer.category)
    if price_cap is not None and offer.price > price_cap + 1e-9:
        return f"costs more than the pod allows (${price_cap:g}/hr)"
    for entry in backoffs.active(now):
        if (entry.instance_type, entry.category) == (offer.name, category) and not entry.zone:
            return f"backed off ({entry.kind}) for {duration(entry.until - now)} more"
    gpus = offer.instance.gpu_count
    for name, adds, label in (
        ("gpus", gpus, "clusterGPULimit"),
        ("nodes", 1, "maxNodes"),
        ("costPerHour", offer.price, "maxClusterCostPerHour"),
    ):
        use = guardrails.get(name) if isinstance(guardrails.get(name), Mapping) else None
        if use is None or not adds:
            continue
        used, limit = use.get("used"), use.get("limit")
        if (
            isinstance(used, int | float)
            and isinstance(limit, int | float)
            and used + adds > limit + 1e-9
        ):
            return f"{label}: {used:g} used of {limit:g}, this type adds {adds:g}"
    return ""


# --- the answer ------------------------------------------------------------------------------------


def _summary(
    out: Mapping[str, Any],
    bound: str,
    launch: Mapping[str, Any] | None,
    intake_reason: str,
    config: Config,
) -> str:
    managed = out["managed"]
    if bound:
        return f"bound to node {bound}"
    if not managed["managed"]:
        return f"not managed by Gibbous: {managed['why']}"
    if out["class"].get("unsupported"):
        return f"no node Gibbous can buy runs it: {out['class']['unsupported']}"
    if launch is not None:
        return (
            f"waiting for a new {launch.get('instanceType')} {launch.get('category')} "
            f"({launch.get('state')}, launch {launch.get('token')})"
        )
    if out["intake"]["decision"] == "ignore":
        return f"Gibbous does not provision for it: {intake_reason}"
    existing = out["existingNodes"]
    if existing["fit"]:
        return f"{existing['fit']} existing node(s) can take it: waiting for the scheduler"
    types = out["instanceTypes"]
    if types["fitting"] == 0:
        if types.get("reason"):
            return str(types["reason"])
        rule = types["decisiveRule"] or "no offer in the catalog"
        return (
            f"no instance type meets it: {rule} rules out the last {types['ruledOut'].get(rule, 0)}"
        )
    if types["wouldBuy"] is None:
        blocked = types["cheapest"][0]["blockedBy"] if types["cheapest"] else ""
        return f"every fitting type is blocked: {blocked}"
    would = types["wouldBuy"]
    return (
        f"Gibbous would buy a {would['instanceType']} {would['category']} "
        f"(${would['pricePerHour']:.4f}/hr)"
        + (" once the autoscaler decides" if out["autoscaler"]["stale"] is None else "")
    )


def render_explanation(out: Mapping[str, Any], now: float) -> str:
    """The explanation as text, the answer first."""
    lines = [f"pod {out['pod']}: {out.get('summary', '')}"]
    if out["autoscaler"]["stale"]:
        lines.append(f"  note: {out['autoscaler']['stale']}")
    managed = out["managed"]
    lines.append(
        f"\nmanaged: {'yes' if managed['managed'] else 'no'}, {managed['why']}; {managed['scheduler']}"
    )
    lines.append(f"intake: {out['intake']['decision']} ({out['intake']['why']})")
    pod_class = out["class"]
    if "error" in pod_class:
        lines.append(f"class: unreadable: {pod_class['error']}")
    else:
        lines.append(f"class: {pod_class['placement']}, requests {pod_class['requests']}")
    existing = out.get("existingNodes")
    if existing is not None:
        lines.append(f"\nexisting nodes: {existing['fit']} of {existing['total']} could take it")
        for group in existing["groups"]:
            made = " (Gibbous)" if group["createdByGibbous"] else ""
            verdict = group["ruledOutBy"] or "fits"
            lines.append(
                f"  {group['nodes']} x {group['instanceType']}{made}: {verdict} "
                f"[{', '.join(group['examples'])}{', ...' if group['nodes'] > 3 else ''}]"
            )
    types = out.get("instanceTypes")
    if types is not None:
        lines.append(
            f"\ninstance types: {types['fitting']} of {types['catalogOffers']} offers fit, cheapest first"
        )
        for candidate in types["cheapest"]:
            state = candidate["blockedBy"] or "available"
            lines.append(
                f"  {candidate['instanceType']} {candidate['category']} "
                f"${candidate['pricePerHour']:.4f}/hr: {state}"
            )
        if types["moreFitting"]:
            lines.append(f"  ... and {types['moreFitting']} more")
        for reason, count in types["ruledOut"].items():
            lines.append(f"  ruled out {count}: {reason}")
        if types.get("note"):
            lines.append(f"  note: {types['note']}")
    launch = out.get("launchInFlight")
    if launch:
        lines.append(
            f"\nlaunch in flight: {launch.get('instanceType')} {launch.get('category')} in "
            f"{launch.get('zone') or 'any zone'}, requested {duration(now - float(launch.get('requestedAt') or now))} ago"
        )
    decision = out.get("lastDecision")
    if decision:
        lines.append(
            f"\nlast decision ({duration(now - float(decision.get('at') or now))} ago): "
            f"{decision.get('outcome')}: {decision.get('detail')}"
        )
    elif out["autoscaler"]["stale"] is None:
        lines.append("\nlast decision: none recorded for this pod")
    if out["events"]:
        lines.append("\nevents (newest first):")
        for event in out["events"]:
            when = f"{duration(now - event['at'])} ago" if event["at"] else "?"
            lines.append(
                f"  {when} {event['type']} {event['reason']} ({event['from']}): {event['message']}"
            )
    return "\n".join(lines) + "\n"

"""What the autoscaler is doing, as one JSON document: launches in flight, back-offs,
guardrail use, drains, the cost of its nodes and the scheduler routing state.

The autoscaler writes it to a ConfigMap (`gibbous status` and `gibbous explain` read it);
this module computes it from a snapshot of the loop's state and renders it as text. Times
are absolute (seconds since the epoch) so that the document changes only when the state
does; ages are computed by the reader against its own clock. Pure: the time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gibbous.core.lifecycle.launches import Launch
from gibbous.core.planning.backoff import Backoffs
from gibbous.core.planning.placement import NodeView
from gibbous.core.settings.config import Config

SCHEMA_VERSION = 1
# The writer rewrites an unchanged document this often, so a reader can tell a live
# autoscaler from a stopped one; older than STALE_AFTER_S reads as stale.
HEARTBEAT_S = 60.0
STALE_AFTER_S = 180.0
# Per-pod decisions kept in the document: enough for every pod a burst leaves pending.
MAX_DECISIONS = 500


@dataclass(frozen=True)
class PodDecision:
    """The last thing the loop decided for a pending pod, and when."""

    uid: str
    key: str  # namespace/name
    at: float
    outcome: str  # "launch", "existing-node", "unsatisfiable", "set-aside"
    detail: str


@dataclass(frozen=True)
class DrainSnapshot:
    node: str
    reason: str
    why: str
    since: float


@dataclass(frozen=True)
class StatusSnapshot:
    """The loop's state at one moment, cheap to take on the loop's thread (references to
    immutable values and shallow copies), turned into the document elsewhere."""

    now: float
    launches: tuple[Launch, ...]
    backoffs: Backoffs
    nodes: tuple[NodeView, ...]
    drains: tuple[DrainSnapshot, ...] = ()
    decisions: tuple[PodDecision, ...] = ()
    paused_until: float = 0.0
    paused_reason: str = ""
    scheduler_alive: bool | None = None  # None: no scheduler Lease is watched
    scheduler_why: str = ""
    pods_waiting_on_stopped_scheduler: int = 0
    on_demand_prices: Mapping[str, float] = field(default_factory=dict)  # type -> $/hr


@dataclass(frozen=True)
class NodeCost:
    """$/hr of Gibbous's nodes by (capacity type, instance type), and what the same nodes
    would cost on demand (spot savings)."""

    by_type: Mapping[tuple[str, str], tuple[int, float]]  # (category, type) -> (nodes, $/hr)
    on_demand_equivalent: float

    @property
    def total(self) -> float:
        return math.fsum(cost for _, cost in self.by_type.values())

    def by_category(self) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for (category, _), (count, cost) in sorted(self.by_type.items()):
            have = out.get(category, (0, 0.0))
            out[category] = (have[0] + count, have[1] + cost)
        return out


def node_cost(nodes: Sequence[NodeView], on_demand_prices: Mapping[str, float]) -> NodeCost:
    """The cost of the nodes Gibbous created (their price label); a node whose type has no
    on-demand price counts at its own price in the on-demand equivalent."""
    by_type: dict[tuple[str, str], tuple[int, float]] = {}
    equivalent = 0.0
    for view in nodes:
        if not view.created_by_gibbous:
            continue
        price = view.price_per_hour or 0.0
        key = (str(view.category) if view.category else "unknown", view.instance_type)
        count, cost = by_type.get(key, (0, 0.0))
        by_type[key] = (count + 1, cost + price)
        equivalent += on_demand_prices.get(view.instance_type, price)
    return NodeCost(by_type, equivalent)


def status_document(snapshot: StatusSnapshot, config: Config) -> dict[str, Any]:
    """The document the autoscaler publishes; `writtenAt` is left to the writer (the
    content is compared without it)."""
    cost = node_cost(snapshot.nodes, snapshot.on_demand_prices)
    gibbous_nodes = [v for v in snapshot.nodes if v.created_by_gibbous]
    flying_nodes = {launch.node_name for launch in snapshot.launches if launch.node_name}
    counted = [v for v in gibbous_nodes if v.name not in flying_nodes]
    launches_cost = math.fsum(launch.plan.offer.price for launch in snapshot.launches)
    return {
        "schemaVersion": SCHEMA_VERSION,
        "launches": [_launch(launch) for launch in snapshot.launches],
        "backoffs": [
            {
                "instanceType": e.instance_type,
                "category": e.category,
                "zone": e.zone,
                "kind": str(e.kind),
                "until": round(e.until, 3),
            }
            for e in sorted(
                snapshot.backoffs.active(snapshot.now),
                key=lambda e: (e.until, e.instance_type, e.category, e.zone),
            )
        ],
        "guardrails": {
            "gpus": {
                "used": sum(v.gpu_count or 0 for v in counted)
                + sum(launch.plan.offer.instance.gpu_count for launch in snapshot.launches),
                "limit": config.cluster_gpu_limit,
            },
            "nodes": {
                "used": len(counted) + len(snapshot.launches),
                "limit": config.max_nodes,
            },
            "costPerHour": {
                "used": round(
                    math.fsum(v.price_per_hour or 0.0 for v in counted) + launches_cost, 6
                ),
                "limit": config.max_cost_per_hour,
            },
        },
        "paused": (
            {"until": round(snapshot.paused_until, 3), "reason": snapshot.paused_reason}
            if snapshot.paused_until > snapshot.now
            else None
        ),
        "drains": [
            {"node": d.node, "reason": d.reason, "why": d.why, "since": round(d.since, 3)}
            for d in sorted(snapshot.drains, key=lambda d: d.node)
        ],
        "cost": {
            "perHour": round(cost.total, 6),
            "onDemandEquivalentPerHour": round(cost.on_demand_equivalent, 6),
            "byCapacityType": {
                category: {"nodes": count, "perHour": round(total, 6)}
                for category, (count, total) in cost.by_category().items()
            },
        },
        "routing": {
            "schedulerName": config.scheduler_name,
            "schedulerAlive": snapshot.scheduler_alive,
            "why": snapshot.scheduler_why,
            "podsWaitingOnStoppedScheduler": snapshot.pods_waiting_on_stopped_scheduler,
        },
        "decisions": [
            {
                "uid": d.uid,
                "pod": d.key,
                "at": round(d.at, 3),
                "outcome": d.outcome,
                "detail": d.detail,
            }
            for d in sorted(snapshot.decisions, key=lambda d: (-d.at, d.key))[:MAX_DECISIONS]
        ],
    }


def _launch(launch: Launch) -> dict[str, Any]:
    offer = launch.plan.offer
    return {
        "token": launch.token,
        "instanceType": offer.name,
        "category": str(offer.category),
        "zone": launch.zone or ",".join(launch.plan.zones),
        "state": str(launch.state),
        "requestedAt": round(launch.requested_at, 3),
        "instanceId": launch.instance_id,
        "node": launch.node_name,
        "pricePerHour": offer.price,
        "pods": list(launch.plan.pods),
    }


# --- reading and rendering ----------------------------------------------------------------------


def staleness(document: Mapping[str, Any] | None, now: float) -> str:
    """ "" for a live document, else why it cannot be trusted as current."""
    if document is None:
        return "no status object: the autoscaler is not running here, or has not written yet"
    written = document.get("writtenAt")
    if not isinstance(written, int | float) or isinstance(written, bool):
        return "the status object has no writtenAt time"
    age = now - float(written)
    if age > STALE_AFTER_S:
        return (
            f"the status object is stale: last written {duration(age)} ago (the autoscaler "
            f"rewrites it at least every {HEARTBEAT_S:.0f}s while it leads)"
        )
    return ""


def render_status(document: Mapping[str, Any] | None, now: float) -> str:
    """`gibbous status` as text."""
    lines = []
    stale = staleness(document, now)
    if stale:
        lines.append(f"warning: {stale}")
    if document is None:
        return "\n".join(lines) + "\n"
    lines.append(f"written {duration(now - _number(document.get('writtenAt')))} ago")
    launches = _records(document.get("launches"))
    lines.append(f"\nlaunches in flight: {len(launches)}")
    for launch in launches:
        pods = [str(p) for p in launch.get("pods") or []]
        lines.append(
            f"  {launch.get('instanceType')} {launch.get('category')} "
            f"zone={launch.get('zone') or '-'} age={duration(now - _number(launch.get('requestedAt')))} "
            f"state={launch.get('state')} pods waiting: {len(pods)}"
            + (f" ({', '.join(pods[:5])}{', ...' if len(pods) > 5 else ''})" if pods else "")
        )
    backoffs = _records(document.get("backoffs"))
    lines.append(f"\nback-offs: {len(backoffs)}")
    for entry in backoffs:
        until = _number(entry.get("until"))
        lines.append(
            f"  {entry.get('instanceType')} {entry.get('category')} "
            f"zone={entry.get('zone') or 'all'} {entry.get('kind')}, ends in "
            f"{duration(until - now)} (at {_clock(until)})"
        )
    lines.append("\nguardrails:")
    guardrails = _map(document.get("guardrails"))
    for name, unit in (("gpus", "GPUs"), ("nodes", "nodes"), ("costPerHour", "$/hr")):
        use = _map(guardrails.get(name))
        used, limit = use.get("used"), use.get("limit")
        shown = f"{_number(used):.4f}" if name == "costPerHour" else str(used)
        lines.append(f"  {unit}: {shown} of {'no limit' if limit is None else limit}")
    paused = _map(document.get("paused"))
    if paused:
        lines.append(
            f"  launches paused for {duration(_number(paused.get('until')) - now)}: "
            f"{paused.get('reason')}"
        )
    drains = _records(document.get("drains"))
    lines.append(f"\nnodes draining: {len(drains)}")
    for drain in drains:
        lines.append(
            f"  {drain.get('node')}: {drain.get('reason')} ({drain.get('why')}), "
            f"for {duration(now - _number(drain.get('since')))}"
        )
    cost = _map(document.get("cost"))
    lines.append(
        f"\ncost: ${_number(cost.get('perHour')):.4f}/hr "
        f"(on demand: ${_number(cost.get('onDemandEquivalentPerHour')):.4f}/hr)"
    )
    for category, entry in sorted(_map(cost.get("byCapacityType")).items()):
        share = _map(entry)
        lines.append(
            f"  {category}: {share.get('nodes')} node(s), ${_number(share.get('perHour')):.4f}/hr"
        )
    routing = _map(document.get("routing"))
    lines.append("\nscheduler routing:")
    if not routing.get("schedulerName"):
        lines.append("  no Gibbous scheduler: managed pods go to the default scheduler")
    else:
        alive = routing.get("schedulerAlive")
        state = "not watched" if alive is None else "alive" if alive else "NOT RUNNING"
        lines.append(
            f"  {routing.get('schedulerName')}: {state}"
            + (f" ({routing.get('why')})" if routing.get("why") else "")
            + f"; pods waiting on it while stopped: {routing.get('podsWaitingOnStoppedScheduler')}"
        )
    return "\n".join(lines) + "\n"


def _records(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _clock(epoch: float) -> str:
    """UTC hh:mm:ss of an epoch time, without the datetime module (the core reads no clock)."""
    day = int(epoch) % 86400
    return f"{day // 3600:02d}:{day % 3600 // 60:02d}:{day % 60:02d}Z"

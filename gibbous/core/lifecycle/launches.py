"""Bookkeeping of launches between "the cloud said yes" and "the Node is Ready".

Pure: the loop passes its launch records, what the provider lists, what the API server
shows and the time, and gets back the new records and what to do. One rule table:

  record, node Ready (GPU nodes: GPUs allocatable)     -> done; its gated pods are released
  record accepted, the cloud reports the launch failed
    after accepting it (polled or listed)               -> terminate what is left, back off
                                                           (type, category, zone) by the kind
                                                           of failure; its pods are planned
                                                           again at once
  record accepted, not Ready after `scaleUpTimeout`     -> terminate, back off (type, category)
  record requested (throttled), past `scaleUpTimeout`   -> drop (pods are planned afresh)
  record accepted, instance gone from the provider      -> drop after a settle time
  instance of ours, no record, no Node, young           -> adopt (a restart lost its record)
  instance of ours, no record, no Node, older than
    `registrationTimeout`                               -> orphan; terminate after
                                                           `orphanGracePeriod` more
  instance with a Node and no record, Ready or launched
    longer ago than `scaleUpTimeout`                    -> a running node; nothing to do

A restart therefore rebuilds its launches from the provider's tags: launches still booting
are adopted (and counted by the planner, so nothing is launched twice), and instances that
never became Nodes are terminated, never leaked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.classify import Placement
from gibbous.core.choice.instances import Instance, InstanceState
from gibbous.core.choice.ownership import install_owner, owned_instance
from gibbous.core.choice.selection import Offer
from gibbous.core.errors import GibbousError
from gibbous.core.planning.backoff import FailureKind
from gibbous.core.planning.scaleup import InFlight, LaunchPlan
from gibbous.core.podmodel.pods import as_map, condition_is_true, metadata
from gibbous.core.podmodel.resources import Resources
from gibbous.core.settings.config import Config

# The kinds a provider may report for a launch that failed after acceptance; anything else
# is taken as a stock-out of that (type, category, zone), the commonest cause.
_ASYNC_FAILURES = frozenset(
    {
        FailureKind.INSUFFICIENT_CAPACITY.value,
        FailureKind.QUOTA.value,
        FailureKind.PROVIDER_ERROR.value,  # a failed operation that names no capacity/quota
    }
)

# How long an accepted launch may be missing from the provider's list before we believe it
# is gone (cloud list APIs are eventually consistent).
LIST_SETTLE_S = 60.0


class LaunchState(StrEnum):
    REQUESTED = "requested"  # not accepted yet (throttled): retried with the same token
    ACCEPTED = "accepted"  # the cloud has an instance for it


@dataclass(frozen=True)
class Launch:
    token: str
    plan: LaunchPlan
    requested_at: float
    state: LaunchState = LaunchState.REQUESTED
    instance_id: str = ""
    zone: str = ""
    node_name: str = ""
    retry_at: float = 0.0
    attempts: int = 0
    adopted: bool = False  # rebuilt from the provider after a restart

    def in_flight(self) -> InFlight:
        return InFlight(
            token=self.token,
            offer=self.plan.offer,
            placement=self.plan.placement,
            zone=self.zone or (self.plan.zones[0] if self.plan.zones else ""),
            started_at=self.requested_at,
            assigned_pod_uid=self.plan.assigned_pod_uid,
            labels=self.plan.labels,
            taints=self.plan.taints,
        )


@dataclass(frozen=True)
class NodeState:
    """What the review needs of a Node."""

    name: str
    ready: bool
    gpus_allocatable: int = 0


@dataclass(frozen=True)
class Termination:
    instance_id: str
    reason: str
    backoff: tuple[str, str, str, FailureKind] | None = None  # (type, category, zone, kind)
    launch: Launch | None = None


@dataclass(frozen=True)
class LaunchReview:
    launches: Mapping[str, Launch]  # token -> still in flight
    completed: tuple[tuple[Launch, str], ...]  # (launch, node name)
    terminate: tuple[Termination, ...]
    dropped: tuple[tuple[Launch, str], ...]  # (launch, why): pods must be planned again
    retry: tuple[Launch, ...]  # requested launches whose retry time has come
    adopted: tuple[Launch, ...]
    orphans_seen: Mapping[str, float] = field(default_factory=dict)  # instance id -> first seen


def node_state(node: Mapping[str, Any]) -> NodeState:
    """Ready = the Ready condition is True and the not-ready taint is gone."""
    taints = as_map(node.get("spec")).get("taints")
    tainted = isinstance(taints, list) and any(
        isinstance(t, Mapping) and t.get("key") == keys.NOT_READY_TAINT for t in taints
    )
    try:
        allocatable = as_map(as_map(node.get("status")).get("allocatable"))
        gpus = Resources.from_resource_list(allocatable, "status.allocatable").gpus
    except GibbousError:
        gpus = 0
    return NodeState(
        str(metadata(node).get("name") or ""),
        condition_is_true(node, "Ready") and not tainted,
        gpus,
    )


def node_is_ready(node: NodeState | None, offer: Offer) -> bool:
    if node is None or not node.ready:
        return False
    # A GPU node is not done until its device plugin reports the GPUs: until then the
    # scheduler cannot place the pods it was made for, and the planner must keep counting it.
    return offer.instance.gpu_count == 0 or node.gpus_allocatable > 0


def adopt(instance: Instance, offers_by_key: Mapping[tuple[str, str], Offer]) -> Launch | None:
    """Rebuild a launch record from an instance's tags (after a restart)."""
    offer = offers_by_key.get((instance.instance_type, instance.category))
    if offer is None:
        return None
    placement_label = instance.labels.get(keys.PLACEMENT, "")
    placement = (
        Placement(placement_label)
        if placement_label in (Placement.BIN_PACK, Placement.BIN_SELECT)
        else Placement.BIN_PACK
    )
    plan = LaunchPlan(
        offer=offer,
        placement=placement,
        pods=(),
        zones=(instance.zone,) if instance.zone else (),
        labels=dict(instance.labels),
        taints=(),
        assigned_pod_uid=instance.labels.get(keys.ASSIGNED_POD_UID, ""),
    )
    return Launch(
        token=instance.token,
        plan=plan,
        requested_at=instance.created_at,
        state=LaunchState.ACCEPTED,
        instance_id=instance.id,
        zone=instance.zone,
        node_name=instance.node_name,
        adopted=True,
    )


def review_launches(
    launches: Mapping[str, Launch],
    instances: Iterable[Instance] | None,
    nodes: Mapping[str, NodeState],
    offers_by_key: Mapping[tuple[str, str], Offer],
    config: Config,
    *,
    now: float,
    orphans_seen: Mapping[str, float] | None = None,
    polled: Mapping[str, Instance] | None = None,
) -> LaunchReview:
    """Apply the rule table. `instances` is None when the provider could not be listed this
    time: then only what the API server shows is used (no adoption, no orphans). `polled`
    holds what the provider said of single launches in flight (by instance id), which is
    where failures after acceptance show first."""
    records = dict(launches)
    completed: list[tuple[Launch, str]] = []
    terminate: list[Termination] = []
    dropped: list[tuple[Launch, str]] = []
    retry: list[Launch] = []
    adopted: list[Launch] = []
    seen_orphans: dict[str, float] = {}

    listed = list(instances) if instances is not None else None
    by_token = {i.token: i for i in listed or () if i.token}
    if listed is not None:
        owner = install_owner(config)
        known_tokens = set(records)
        for instance in listed:
            if instance.state in (InstanceState.TERMINATING, InstanceState.TERMINATED):
                continue
            if instance.token in known_tokens:
                continue
            if not owned_instance(instance.labels, owner):
                continue  # another install's launch: neither adopted nor collected here
            node = nodes.get(instance.node_name) if instance.node_name else None
            age = now - instance.created_at
            if node is not None:
                offer = offers_by_key.get((instance.instance_type, instance.category))
                # A registered node that is Ready, or was launched long ago and is NotReady
                # now, is a running node of ours: its health is node lifecycle's business.
                if offer is None or node_is_ready(node, offer) or age > config.scale_up_timeout_s:
                    continue
            if node is None and age > config.registration_timeout_s:
                first = (orphans_seen or {}).get(instance.id, now)
                seen_orphans[instance.id] = first
                if now - first >= config.orphan_grace_s:
                    terminate.append(
                        Termination(
                            instance.id,
                            f"orphan: no Node {age:.0f}s after launch and no launch record",
                        )
                    )
                continue
            launch = adopt(instance, offers_by_key)
            if launch is not None:
                records[launch.token] = launch
                adopted.append(launch)

    still: dict[str, Launch] = {}
    for token, recorded in records.items():
        found = by_token.get(token)
        launch = recorded
        if found is not None and recorded.state is LaunchState.ACCEPTED:
            launch = replace(
                recorded,
                instance_id=found.id,
                zone=found.zone or launch.zone,
                node_name=found.node_name or launch.node_name,
            )
        node = nodes.get(launch.node_name) if launch.node_name else None
        age = now - launch.requested_at
        offer = launch.plan.offer
        if launch.state is LaunchState.ACCEPTED and node_is_ready(node, offer):
            completed.append((launch, launch.node_name))
            continue
        reported = (polled or {}).get(launch.instance_id) or found
        if launch.state is LaunchState.ACCEPTED and reported is not None and reported.failure_kind:
            kind = (
                FailureKind(reported.failure_kind)
                if reported.failure_kind in _ASYNC_FAILURES
                else FailureKind.INSUFFICIENT_CAPACITY
            )
            terminate.append(
                Termination(
                    launch.instance_id,
                    f"{offer.describe()} failed after the cloud accepted it: "
                    f"{reported.failure_reason or reported.failure_kind}",
                    (offer.name, str(offer.category), reported.zone or launch.zone, kind),
                    launch,
                )
            )
            continue
        if launch.state is LaunchState.REQUESTED:
            if age > config.scale_up_timeout_s:
                dropped.append((launch, "the cloud API kept refusing (throttled) the request"))
                continue
            if now >= launch.retry_at:
                retry.append(launch)
            still[token] = launch
            continue
        if age > config.scale_up_timeout_s:
            terminate.append(
                Termination(
                    launch.instance_id,
                    f"{offer.describe()} not Ready {config.scale_up_timeout_s:.0f}s "
                    "(scaleUpTimeout) after launch",
                    (offer.name, str(offer.category), "", FailureKind.LAUNCH_TIMEOUT),
                    launch,
                )
            )
            continue
        if listed is not None and found is None and node is None and age > LIST_SETTLE_S:
            dropped.append((launch, f"instance {launch.instance_id} disappeared before its Node"))
            continue
        still[token] = launch
    return LaunchReview(
        launches=still,
        completed=tuple(completed),
        terminate=tuple(terminate),
        dropped=tuple(dropped),
        retry=tuple(retry),
        adopted=tuple(adopted),
        orphans_seen=seen_orphans,
    )


def nodes_by_instance(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Node names by the instance behind them, from `spec.providerID`: the whole id
    (`ocid1.instance...`, an Azure resource id) and its last segment
    (`aws:///us-west-2a/i-0abc` -> `i-0abc`, `gce://p/z/name` -> `name`)."""
    out: dict[str, str] = {}
    for node in nodes:
        provider_id = as_map(node.get("spec")).get("providerID")
        name = metadata(node).get("name")
        if not isinstance(provider_id, str) or not provider_id or not isinstance(name, str):
            continue
        out.setdefault(provider_id.rsplit("/", 1)[-1], name)
        out[provider_id] = name
    return out


@dataclass(frozen=True)
class Repair:
    """What a registered node of ours lacks of what its launch asked for."""

    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]

    def describe(self) -> str:
        parts = []
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items())))
        if self.taints:
            parts.append(
                "taints "
                + ", ".join(
                    f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in self.taints
                )
            )
        return " and ".join(parts)


def registration_repair(
    launch: Launch, node: Mapping[str, Any], cloud_keys: frozenset[str] = frozenset()
) -> Repair | None:
    """The labels and taints the node registered without (its user data or bootstrap did not
    set them, or NodeRestriction kept the kubelet from it), or None when it has them all.
    Labels in `cloud_keys` (keys, or label prefixes such as `cloud.google.com`) are the
    cloud's and the kubelet's to write: never repaired."""
    have = dict(as_map(metadata(node).get("labels")))
    labels = {
        k: v
        for k, v in launch.plan.labels.items()
        if k not in cloud_keys and k.partition("/")[0] not in cloud_keys and have.get(k) != v
    }
    raw = as_map(node.get("spec")).get("taints")
    present = {
        (t.get("key"), t.get("value") or "", t.get("effect"))
        for t in (raw if isinstance(raw, list) else [])
        if isinstance(t, Mapping)
    }
    taints = tuple(
        t
        for t in launch.plan.taints
        if (t.get("key"), t.get("value") or "", t.get("effect")) not in present
    )
    return Repair(labels, taints) if labels or taints else None


def repaired_node(node: Mapping[str, Any], repair: Repair) -> dict[str, Any]:
    """A copy of `node` as it reads once `repair` is applied."""
    meta = dict(metadata(node))
    meta["labels"] = {**as_map(meta.get("labels")), **repair.labels}
    spec = dict(as_map(node.get("spec")))
    raw = spec.get("taints")
    spec["taints"] = [*(raw if isinstance(raw, list) else []), *(dict(t) for t in repair.taints)]
    return {**node, "metadata": meta, "spec": spec}

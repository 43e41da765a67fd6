"""Which pending pods may make Gibbous buy a node, as an ordered list of rules.

For a managed pod, in order (the first rule that decides wins):
  * finished, terminating, DaemonSet, mirror, already bound: ignore;
  * preempting (`status.nominatedNodeName` set): ignore, the scheduler is making room;
  * gated by Luna's `nodecostestimate`: estimate only (report cost, never launch);
  * gated by any other gate than Gibbous's `gibbous.dev/provisioning`: ignore (Kueue,
    Volcano, KAI and others hold pods this way on purpose);
  * gated by Gibbous's gate alone: provision (that gate is ours to lift);
  * `cluster-autoscaler.kubernetes.io/pod-scale-up-delay` not yet elapsed: wait;
  * `PodScheduled=False` with reason `Unschedulable` and a message that matches
    `pendingPodReasonRegexp` (unanchored search; unset matches all): provision;
  * anything else: ignore (not unschedulable, or pending for a reason no node fixes,
    such as a batch scheduler's queue quota).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gibbous.core import keys
from gibbous.core.errors import ConfigError
from gibbous.core.grammar.duration import parse_duration
from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.podmodel.constraints import ignored_by_opt_out
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    as_map,
    is_daemonset_pod,
    is_finished,
    is_mirror_pod,
    is_terminating,
    metadata,
    node_name_of,
    pod_condition,
    scheduling_gates,
)
from gibbous.core.settings.config import Config

CA_SCALE_UP_DELAY = "cluster-autoscaler.kubernetes.io/pod-scale-up-delay"


class Intake(StrEnum):
    PROVISION = "provision"
    ESTIMATE = "estimate"
    WAIT = "wait"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class IntakeDecision:
    intake: Intake
    reason: str


def created_at(obj: Mapping[str, Any]) -> float | None:
    """`metadata.creationTimestamp` in seconds since the epoch (a Pod's or a Node's)."""
    stamp = metadata(obj).get("creationTimestamp")
    return epoch_seconds(stamp) if isinstance(stamp, str) else None


def decide_intake(pod: Pod, config: Config, now: float) -> IntakeDecision:
    """What to do about `pod` at time `now` (seconds since the epoch)."""
    if not config.designation.marks(pod):
        return IntakeDecision(Intake.IGNORE, f"not managed (no {config.designation.describe()})")
    if ignored_by_opt_out(annotations_of(pod)):
        return IntakeDecision(Intake.IGNORE, f"opted out ({keys.IGNORE}=true)")
    if is_finished(pod) or is_terminating(pod):
        return IntakeDecision(Intake.IGNORE, "finished or terminating")
    if is_daemonset_pod(pod) or is_mirror_pod(pod):
        return IntakeDecision(Intake.IGNORE, "DaemonSet or mirror pod")
    if node_name_of(pod):
        return IntakeDecision(Intake.IGNORE, f"already bound to {node_name_of(pod)}")
    nominated = as_map(pod.get("status")).get("nominatedNodeName")
    if nominated:
        return IntakeDecision(Intake.IGNORE, f"preempting: nominated to {nominated}")
    gates = scheduling_gates(pod)
    if keys.COST_ESTIMATE_GATE in gates:
        return IntakeDecision(Intake.ESTIMATE, "nodecostestimate gate: estimate only")
    foreign = [g for g in gates if g != keys.PROVISIONING_GATE]
    if foreign:
        return IntakeDecision(Intake.IGNORE, f"held by scheduling gate {foreign[0]}")
    if gates:
        return IntakeDecision(
            Intake.PROVISION, f"held by {keys.PROVISIONING_GATE} until its node exists"
        )
    delay_text = annotations_of(pod).get(CA_SCALE_UP_DELAY)
    if delay_text:
        created = created_at(pod)
        try:
            delay = parse_duration(delay_text, CA_SCALE_UP_DELAY)
        except ConfigError:
            delay = 0.0
        if created is not None and now - created < delay:
            return IntakeDecision(Intake.WAIT, f"{CA_SCALE_UP_DELAY}={delay_text} not elapsed")
    condition = pod_condition(pod, "PodScheduled")
    if (
        condition is None
        or condition.get("status") != "False"
        or condition.get("reason") != "Unschedulable"
    ):
        return IntakeDecision(Intake.IGNORE, "not marked Unschedulable by a scheduler")
    message = str(condition.get("message") or "")
    pattern = config.pending_pod_reason_pattern
    if pattern is not None and not pattern.search(message):
        return IntakeDecision(
            Intake.IGNORE,
            f"pending message does not match pendingPodReasonRegexp: {message[:120]!r}",
        )
    return IntakeDecision(Intake.PROVISION, "unschedulable")

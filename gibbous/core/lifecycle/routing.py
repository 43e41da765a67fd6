"""Whether the Gibbous scheduler is alive, so pods may be routed to it.

kube-scheduler renews its leader-election Lease every `retryPeriod` (2 s) and gives up
leading after `renewDeadline` (10 s); a Lease whose `renewTime` is older than its
`leaseDurationSeconds` (15 s) plus a margin has no live scheduler behind it. The margin (10 s)
absorbs clock skew between this process and the scheduler's: a renewal a few seconds in the
future is a live one. A missing Lease, or one that never renewed, is not alive: pods would
wait for a scheduler that is not there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.grammar.timestamps import epoch_seconds
from gibbous.core.lifecycle.intake import created_at
from gibbous.core.podmodel.pods import Pod, as_map, node_name_of, pod_condition, spec

LEASE_MARGIN_S = 10.0
DEFAULT_LEASE_DURATION_S = 15.0


@dataclass(frozen=True)
class Liveness:
    alive: bool
    why: str  # for logs and events: "renewed 3s ago", "not renewed for 95s", "no Lease"


def scheduler_liveness(
    lease: Mapping[str, Any] | None, now: float, margin_s: float = LEASE_MARGIN_S
) -> Liveness:
    if not lease:
        return Liveness(False, "its Lease does not exist")
    lease_spec = as_map(lease.get("spec"))
    renewed = lease_spec.get("renewTime")
    stamp = epoch_seconds(renewed) if isinstance(renewed, str) else None
    if stamp is None:
        return Liveness(False, "its Lease was never renewed")
    duration = lease_spec.get("leaseDurationSeconds")
    limit = (
        float(duration)
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0
        else DEFAULT_LEASE_DURATION_S
    )
    age = now - stamp
    if age <= limit + margin_s:
        return Liveness(True, f"Lease renewed {max(age, 0.0):.0f}s ago")
    return Liveness(False, f"its Lease was not renewed for {age:.0f}s")


def waits_on_scheduler(pod: Pod, scheduler: str, now: float, patience_s: float) -> bool:
    """A pod for `scheduler` that no scheduler has looked at for `patience_s`: unbound, no
    PodScheduled condition (a scheduler that tried would have set one), not gated."""
    pod_spec = spec(pod)
    if pod_spec.get("schedulerName") != scheduler or node_name_of(pod):
        return False
    if pod_spec.get("schedulingGates") or pod_condition(pod, "PodScheduled") is not None:
        return False
    if as_map(pod.get("metadata")).get("deletionTimestamp"):
        return False
    born = created_at(pod)
    return born is not None and now - born >= patience_s

"""The plain records a cloud provider exchanges with Gibbous: what to launch and what runs.

Pure data, in the core so the launch bookkeeping (`gibbous.core.lifecycle.launches`) can reason about
instances without importing a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class InstanceState(StrEnum):
    PENDING = "pending"  # accepted by the cloud, not running yet
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a provider needs to start one node. `token` makes create idempotent: the
    same token twice yields the same instance, so a restart never launches twice."""

    token: str
    cluster_id: str
    instance_type: str
    category: str  # spot | on-demand
    zones: tuple[str, ...]  # allowed zones, preferred first; empty = any
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    # A boot/root disk larger than the configured one, GiB, for the ephemeral storage the
    # node's pods request (`gibbous.core.choice.nodedisk`); 0: the configured disk.
    disk_gib: int = 0


@dataclass(frozen=True)
class Instance:
    id: str
    token: str
    cluster_id: str
    instance_type: str
    category: str
    zone: str
    state: InstanceState
    created_at: float
    node_name: str = ""  # the Node it registers as, once known
    labels: Mapping[str, str] = field(default_factory=dict)
    interrupted: bool = False  # the cloud announced a spot interruption
    # A launch the cloud accepted and then gave up on (EC2 spot `pending -> terminated` with
    # Server.InsufficientInstanceCapacity; a GKE or OKE operation that failed): the kind, as
    # `gibbous.core.planning.backoff.FailureKind` spells it ("insufficient-capacity", "quota"), and the
    # cloud's own words. Empty while nothing failed.
    failure_kind: str = ""
    failure_reason: str = ""

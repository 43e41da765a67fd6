"""The cloud-provider interface, modelled on Karpenter's: create, delete, get, list and the
instance types on offer. Failures are typed, so the loop branches on the kind of failure,
never on a message.

    CloudError
    ├── InsufficientCapacityError   no stock for (type, category, zone): back off, try the next
    ├── QuotaExceededError          the account may not have more: back off, try the next
    ├── ThrottledError              the API asks to slow down: retry after `retry_after_s`
    ├── FatalConfigurationError     the provider is set up wrong (credentials, template): stop
    └── InstanceNotFoundError       get/delete of an instance that no longer exists
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gibbous.core.catalog import InstanceType


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


class CloudError(Exception):
    pass


class InsufficientCapacityError(CloudError):
    def __init__(
        self, instance_type: str, category: str, zone: str = "", message: str = ""
    ) -> None:
        self.instance_type, self.category, self.zone = instance_type, category, zone
        super().__init__(
            message or f"no capacity for {instance_type} ({category}) in {zone or 'any zone'}"
        )


class QuotaExceededError(CloudError):
    def __init__(self, instance_type: str, category: str, message: str = "") -> None:
        self.instance_type, self.category = instance_type, category
        super().__init__(message or f"quota exhausted for {instance_type} ({category})")


class ThrottledError(CloudError):
    def __init__(self, retry_after_s: float = 1.0, message: str = "") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message or f"throttled; retry after {retry_after_s:g}s")


class FatalConfigurationError(CloudError):
    pass


class InstanceNotFoundError(CloudError):
    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id} not found")


class CloudProvider(Protocol):
    """What Gibbous needs from a cloud. Implementations: fake (tests), kwok (Node objects in a
    real API server), aws."""

    name: str

    def instance_types(self) -> list[InstanceType]:
        """The catalog this provider can launch, with prices."""
        ...

    def create(self, request: LaunchRequest) -> Instance:
        """Start one instance. Idempotent by `request.token`. Raises InsufficientCapacityError,
        QuotaExceededError, ThrottledError or FatalConfigurationError."""
        ...

    def delete(self, instance_id: str) -> None:
        """Terminate. Raises InstanceNotFoundError if it is already gone."""
        ...

    def get(self, instance_id: str) -> Instance:
        """Current state. Raises InstanceNotFoundError."""
        ...

    def list(self, cluster_id: str) -> list[Instance]:
        """Every live instance tagged with `cluster_id` (for restarts and orphan collection)."""
        ...

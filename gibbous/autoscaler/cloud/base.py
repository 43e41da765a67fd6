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

from typing import Protocol

from gibbous.core.choice.catalog import InstanceType
from gibbous.core.choice.instances import Instance, InstanceState, LaunchRequest

__all__ = [
    "CloudError",
    "CloudProvider",
    "FatalConfigurationError",
    "Instance",
    "InstanceNotFoundError",
    "InstanceState",
    "InsufficientCapacityError",
    "LaunchRequest",
    "QuotaExceededError",
    "ThrottledError",
]


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
    # How many `create` calls may run at once (a burst's launches go out together; the
    # client must be thread-safe for more than 1).
    launch_concurrency: int
    # Label keys the cloud and the kubelet write with their own values (GKE's instance-type
    # label names the machine type, not the catalog's type): never "repaired" by Gibbous.
    # An entry without `/` stands for every key with that prefix (`cloud.google.com`).
    cloud_label_keys: frozenset[str]
    # Labels the cloud's provisioning unit cannot carry when a node registers (per-node
    # labels on a pool-based cloud): Gibbous adds them then, as a matter of course.
    late_label_keys: frozenset[str]

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
        """Current state. A launch the cloud accepted and then gave up on comes back
        TERMINATED with `failure_kind` and `failure_reason` saying why. Raises
        InstanceNotFoundError when the cloud no longer knows the instance."""
        ...

    def list(self, cluster_id: str) -> list[Instance]:
        """Every live instance tagged with `cluster_id` (for restarts and orphan collection)."""
        ...

    def close(self) -> None:
        """Release the SDK's connections (the autoscaler stopped)."""
        ...

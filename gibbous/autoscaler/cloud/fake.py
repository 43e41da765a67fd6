"""An in-memory cloud for tests: every call is recorded, and stock-outs, quota errors,
throttling, launch latency and launches that hang forever are injected per instance type,
category and zone. Time comes from the clock it is given, so tests run on a fake clock.

Reads and deletes fail and lag as the clouds' APIs (and Gibbous's emulators) can: errors
queued per call (`list_errors`, `get_errors`, `delete_errors`: a throttle, a 5xx), a new
instance missing from list and get for `visibility_lag_s` (EC2's eventual consistency:
DescribeInstances may answer InvalidInstanceID.NotFound just after RunInstances), and a
deleted one still listed, terminating, for `delete_lag_s` (EC2 shutting-down, a GCE
instance STOPPING, an AKS scale-down operation running)."""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gibbous.autoscaler.cloud.base import (
    Instance,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.core.choice.catalog import InstanceType

Key = tuple[str, str]  # (instance type, category)


@dataclass
class FakeCloudProvider:
    catalog: list[InstanceType]
    clock: Callable[[], float]
    name: str = "fake"
    launch_concurrency: int = 1  # tests read create_calls in order
    cloud_label_keys: frozenset[str] = frozenset()
    late_label_keys: frozenset[str] = frozenset()
    boot_s: float = 30.0
    stockouts: set[tuple[str, str, str]] = field(default_factory=set)  # (type, category, zone|"")
    quota_exhausted: set[Key] = field(default_factory=set)
    hangs: set[Key] = field(default_factory=set)  # accepted, never running
    # Accepted, then failed this many seconds later (an EC2 spot launch going
    # pending -> terminated, a GKE operation ending in a stock-out).
    fails_after_accept: dict[Key, float] = field(default_factory=dict)
    latency_s: dict[Key, float] = field(default_factory=dict)
    next_errors: list[Exception] = field(
        default_factory=list
    )  # raised by the next create calls (a bug too)
    list_errors: list[Exception] = field(default_factory=list)  # raised by the next lists
    get_errors: list[Exception] = field(default_factory=list)
    delete_errors: list[Exception] = field(default_factory=list)
    visibility_lag_s: float = 0.0  # a new instance is unseen by list and get this long
    delete_lag_s: float = 0.0  # a deleted instance is listed, terminating, this long
    instances: dict[str, Instance] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)
    create_calls: list[LaunchRequest] = field(default_factory=list)
    delete_calls: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def instance_types(self) -> list[InstanceType]:
        return list(self.catalog)

    def _zone_for(self, request: LaunchRequest) -> str:
        known = next((t for t in self.catalog if t.name == request.instance_type), None)
        candidates = list(request.zones) or list(known.zones if known else ()) or ["zone-a"]
        for zone in candidates:
            if (request.instance_type, request.category, zone) not in self.stockouts:
                return zone
        raise InsufficientCapacityError(
            request.instance_type, request.category, ",".join(candidates)
        )

    def create(self, request: LaunchRequest) -> Instance:
        self.create_calls.append(request)
        for existing in self.instances.values():
            if existing.token == request.token and existing.state is not InstanceState.TERMINATED:
                return self._advance(existing)
        if self.next_errors:
            raise self.next_errors.pop(0)
        key = (request.instance_type, request.category)
        if (request.instance_type, request.category, "") in self.stockouts:
            raise InsufficientCapacityError(request.instance_type, request.category)
        if key in self.quota_exhausted:
            raise QuotaExceededError(request.instance_type, request.category)
        zone = self._zone_for(request)
        instance = Instance(
            id=f"i-{next(self._ids):06d}",
            token=request.token,
            cluster_id=request.cluster_id,
            instance_type=request.instance_type,
            category=request.category,
            zone=zone,
            state=InstanceState.PENDING,
            created_at=self.clock(),
            labels=dict(request.labels),
        )
        self.instances[instance.id] = instance
        return instance

    def _advance(self, instance: Instance) -> Instance:
        """Pending instances start running once their latency has passed (never, if hung)."""
        if instance.state is not InstanceState.PENDING:
            return instance
        key = (instance.instance_type, instance.category)
        failing_after = self.fails_after_accept.get(key)
        if failing_after is not None and self.clock() - instance.created_at >= failing_after:
            instance = replace(
                instance,
                state=InstanceState.TERMINATED,
                failure_kind="insufficient-capacity",
                failure_reason="Server.InsufficientInstanceCapacity: no capacity after all",
            )
            self.instances[instance.id] = instance
            return instance
        if key in self.hangs:
            return instance
        if self.clock() - instance.created_at >= self.latency_s.get(key, self.boot_s):
            instance = replace(
                instance, state=InstanceState.RUNNING, node_name=f"fake-{instance.id}"
            )
            self.instances[instance.id] = instance
        return instance

    def _visible(self, instance: Instance) -> bool:
        return self.clock() - instance.created_at >= self.visibility_lag_s

    def _settle_deletion(self, instance: Instance) -> Instance:
        """A deleted instance terminates `delete_lag_s` after its delete call."""
        deleted = self.deleted_at.get(instance.id)
        if instance.state is not InstanceState.TERMINATING or deleted is None:
            return instance
        if self.clock() - deleted >= self.delete_lag_s:
            instance = replace(instance, state=InstanceState.TERMINATED)
            self.instances[instance.id] = instance
        return instance

    def get(self, instance_id: str) -> Instance:
        if self.get_errors:
            raise self.get_errors.pop(0)
        instance = self.instances.get(instance_id)
        if instance is not None:
            instance = self._settle_deletion(self._advance(instance))
        if (
            instance is None
            or not self._visible(instance)
            or (instance.state is InstanceState.TERMINATED and not instance.failure_kind)
        ):
            raise InstanceNotFoundError(instance_id)
        return instance

    def delete(self, instance_id: str) -> None:
        self.delete_calls.append(instance_id)
        if self.delete_errors:
            raise self.delete_errors.pop(0)
        instance = self.instances.get(instance_id)
        if instance is None or instance.state is InstanceState.TERMINATED:
            raise InstanceNotFoundError(instance_id)
        if instance.state is InstanceState.TERMINATING:
            return  # deleting already: the cloud accepts the call again
        self.deleted_at[instance_id] = self.clock()
        self.instances[instance_id] = self._settle_deletion(
            replace(instance, state=InstanceState.TERMINATING)
        )

    def close(self) -> None:
        return None

    def list(self, cluster_id: str) -> list[Instance]:
        if self.list_errors:
            raise self.list_errors.pop(0)
        return [i for i in self.machines(cluster_id) if self._visible(i)]

    def machines(self, cluster_id: str) -> builtins.list[Instance]:
        """The cluster's machines that exist, whatever the API answers (what their kubelets
        know: a fake cluster registers nodes from these)."""
        advanced = [
            self._settle_deletion(self._advance(i)) for i in builtins.list(self.instances.values())
        ]
        return [
            i
            for i in advanced
            if i.cluster_id == cluster_id and i.state is not InstanceState.TERMINATED
        ]

    def interrupt(self, instance_id: str) -> None:
        """Announce a spot interruption, as a cloud's metadata/event service would."""
        self.instances[instance_id] = replace(self.instances[instance_id], interrupted=True)

    def throttle_next(self, retry_after_s: float = 1.0) -> None:
        self.next_errors.append(ThrottledError(retry_after_s))

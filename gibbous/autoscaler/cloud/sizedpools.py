"""Node pools sized by count: what the AKS and OKE providers share.

On AKS and OKE a node is added by raising a pool's size, the cloud names the new machines,
one operation runs on a pool at a time, and a single machine is removed with a call of its
own (`deleteMachines`; `DeleteNode` with decrement-size). So, for every cloud of that kind:

* a pool per node shape (type, spot, zone, labels, taints: what a pool fixes and a node
  needs when it registers), named from a hash of the cluster id and the shape;
* launches of a shape gather while an operation runs on its pool and go out together in
  the next one (size = its machines + the batch): a burst is at most two operations;
* the machines an operation added (compared with those before it) are given to its
  launches in order; a launch is reported by `get` as pending, then as its machine;
* an operation that fails fails the launches it carried, with the kind the cloud's error
  says (stock-out, quota), and is undone: the pool set back to the machines it has, or
  deleted when it has none; a machine the cloud reports failed is a failed launch too;
* after a restart, the machines an operation still running is adding (size minus
  machines) are listed as launches in flight, so the planner counts them;
* a pool empty for `empty_pool_s` is deleted; pools that are not the cluster's own
  Gibbous pools never reach this class (the cloud adapter lists only those).

The cloud adapter (`PoolCloud`) does the calls and says what its answers mean.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gibbous.autoscaler.cloud.base import (
    CloudError,
    Instance,
    InstanceNotFoundError,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    QuotaExceededError,
    ThrottledError,
)
from gibbous.core.choice.catalog import InstanceType
from gibbous.core.settings.kubeletlabels import kubelet_may_set

log = logging.getLogger("gibbous.autoscaler.pools")

PENDING = "pending/"
POLL_CACHE_S = 1.0


@dataclass(frozen=True)
class Shape:
    """What a pool fixes for all its nodes. `zone` is the cloud's name for the placement
    (AKS's zone number, OKE's availability domain), "" for a regional pool."""

    instance_type: str
    spot: bool
    zone: str
    labels: tuple[tuple[str, str], ...]
    taints: tuple[tuple[str, str, str], ...]
    # A boot/OS disk larger than the configured one for the pods' ephemeral storage (0: the
    # configured one); each cloud names it among its create-only settings.
    disk_gib: int = field(default=0, repr=False)

    def pool_name(
        self, cluster_id: str, prefix: str, digits: int, settings: tuple[Any, ...] = ()
    ) -> str:
        """`settings`: what the cloud fixes at a pool's creation and refuses to change
        after (AKS: OS disk size, max pods, ...), so a changed configuration names a new
        pool instead of an update the cloud refuses. Empty: the name a pool always had."""
        key = (cluster_id, self, settings) if settings else (cluster_id, self)
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:digits]
        return f"{prefix}{digest}"


@dataclass(frozen=True)
class Member:
    """A machine of a pool."""

    name: str  # the cloud's name for it, stable from its creation on
    id: str  # what the Node's providerID says (Instance.id)
    running: bool = True
    failure: tuple[str, str] | None = None  # (FailureKind value, reason) the cloud reports
    # The Kubernetes Node it registers as, when that is not `name` (OKE: the private IP,
    # "" until the cloud has given one).
    node: str | None = None

    @property
    def node_name(self) -> str:
        return self.name if self.node is None else self.node

    def is_called(self, ref: str) -> bool:
        return bool(ref) and ref in {self.id, self.name, self.node_name}


@dataclass(frozen=True)
class PoolView:
    name: str
    shape: Shape
    count: int  # the size asked for
    busy: bool  # an operation runs on it
    failed: bool  # its last operation failed
    members: tuple[Member, ...]
    handle: Any = None  # the adapter's own reference (an OCID, ...)


class PoolCloud(Protocol):
    """One cloud's pool calls, for `SizedPoolProvider`."""

    def pools(self) -> builtins.list[PoolView]:
        """The cluster's Gibbous pools (never anyone else's), with their machines."""
        ...

    def pool(self, name: str) -> PoolView | None: ...

    def resize(self, shape: Shape, name: str, count: int, existing: PoolView | None) -> Any:
        """Create the pool with `count` machines, or set its size; returns the operation.
        Raises the typed errors of `base`."""
        ...

    def finished(self, operation: Any) -> tuple[bool, tuple[str, str] | None]:
        """(done, (FailureKind value, reason) if it failed)."""
        ...

    def remove(self, pool: PoolView, member: Member) -> Any:
        """Delete one machine and lower the size by one."""
        ...

    def delete_pool(self, pool: PoolView) -> Any: ...

    def create_only(self, shape: Shape) -> tuple[Any, ...]:
        """The settings a pool of this shape is created with that the cloud cannot change
        on an existing pool; () when there are none."""
        ...

    def zone_name(self, zone: str) -> str:
        """Gibbous's zone name (the nodes' topology.kubernetes.io/zone) for the cloud's."""
        ...

    def cloud_zone(self, zone: str) -> str:
        """The cloud's zone for Gibbous's name, "" if the cluster has no such zone."""
        ...

    def default_zone(self) -> str:
        """Where a pool goes when a launch allows any zone ("" for a regional pool)."""
        ...

    def close(self) -> None:
        """Close the SDK clients' connections."""
        ...


@dataclass
class Ticket:
    """A launch waiting for, or carried by, an operation on its pool."""

    token: str
    requested_at: float
    labels: Mapping[str, str]


@dataclass
class PoolState:
    name: str
    shape: Shape
    queued: builtins.list[Ticket] = field(default_factory=list)  # not asked for yet
    flying: builtins.list[Ticket] = field(default_factory=list)  # in the operation running
    operation: Any = None
    before: frozenset[str] = frozenset()  # its machines when the operation started
    undoing: bool = False
    polled_at: float | None = None  # when its operation was last asked about


@dataclass
class SizedPoolProvider:
    cloud: PoolCloud
    catalog: builtins.list[InstanceType]
    clock: Callable[[], float]
    cluster_id: str
    name: str
    pool_prefix: str
    pool_digits: int
    cloud_label_keys: frozenset[str]
    late_label_keys: frozenset[str]
    max_pools: int = 1000
    empty_pool_s: float = 600.0
    launch_concurrency: int = 8
    # How many operations a second `advance` may ask about (OKE: a GetWorkRequest each);
    # with more operations running each is asked less often. AKS's pollers ask by
    # themselves: no limit there.
    operation_polls_per_s: float = 3.0

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.types = {t.name: t for t in self.catalog}
        self.states: dict[str, PoolState] = {}
        self.tokens: dict[str, str] = {}  # machine name -> launch token
        self.assigned: dict[str, str] = {}  # launch token -> machine name
        self.failed: dict[str, Instance] = {}  # launch token -> failure
        self.first_seen: dict[str, float] = {}
        self.empty_since: dict[str, float] = {}
        self.pools_read: tuple[float, builtins.list[PoolView]] | None = None
        self.slot_tokens: dict[str, builtins.list[str]] = {}  # pool -> adopted slots' tokens
        self.reads_paused_until = 0.0  # a throttled read: none before this

    def instance_types(self) -> builtins.list[InstanceType]:
        return builtins.list(self.catalog)

    def close(self) -> None:
        self.cloud.close()

    # --- shapes ----------------------------------------------------------------------------------

    def _cloud_key(self, key: str) -> bool:
        return key in self.cloud_label_keys or key.partition("/")[0] in self.cloud_label_keys

    def shape(self, request: LaunchRequest) -> Shape:
        if request.instance_type not in self.types:
            raise CloudError(f"{request.instance_type} is not in the {self.name} catalog")
        zone = next(
            (self.cloud.cloud_zone(z) for z in request.zones if self.cloud.cloud_zone(z)),
            self.cloud.default_zone(),
        )
        labels = tuple(
            sorted(
                (k, v)
                for k, v in request.labels.items()
                if k not in self.late_label_keys
                and not self._cloud_key(k)
                and kubelet_may_set(k)  # the cloud refuses a pool with the others
            )
        )
        taints = tuple(
            sorted(
                (str(t.get("key", "")), str(t.get("value") or ""), str(t.get("effect", "")))
                for t in request.taints
            )
        )
        return Shape(
            request.instance_type,
            request.category == "spot",
            zone,
            labels,
            taints,
            disk_gib=request.disk_gib,
        )

    # --- create -----------------------------------------------------------------------------------

    def create(self, request: LaunchRequest) -> Instance:
        shape = self.shape(request)
        pool_name = shape.pool_name(
            self.cluster_id, self.pool_prefix, self.pool_digits, self.cloud.create_only(shape)
        )
        with self.lock:
            if request.token in self.failed:
                return self.failed[request.token]
            if request.token in self.assigned:
                return self.get(f"{PENDING}{request.token}")
            state = self.states.setdefault(pool_name, PoolState(pool_name, shape))
            if not any(t.token == request.token for t in (*state.queued, *state.flying)):
                state.queued.append(Ticket(request.token, self.clock(), dict(request.labels)))
            ticket = next(t for t in (*state.queued, *state.flying) if t.token == request.token)
            self._flush(state, request)
            if request.token in self.failed:
                failure = self.failed.pop(request.token)
                if failure.failure_kind == "quota":
                    raise QuotaExceededError(
                        request.instance_type, request.category, failure.failure_reason
                    )
                raise InsufficientCapacityError(
                    request.instance_type,
                    request.category,
                    self.cloud.zone_name(shape.zone),
                    failure.failure_reason,
                )
        return self._pending(state.shape, ticket)

    def _flush(self, state: PoolState, request: LaunchRequest | None = None) -> None:
        """Ask the cloud for the queued launches of a pool, if no operation runs on it."""
        if state.operation is not None or not state.queued:
            return
        pool = self.cloud.pool(state.name)
        if pool is None and len(self._recent_pools()) >= self.max_pools:
            self._fail(
                state.queued, "quota", f"the cluster has {self.max_pools} node pools, the limit"
            )
            state.queued = []
            return
        if pool is not None and pool.busy:
            return  # an operation not of this process (before a restart): wait for it
        # Machines the cloud failed (OKE keeps them, with their error) are not counted: the
        # new size lets the cloud drop them.
        machines = [m.name for m in pool.members if m.failure is None] if pool else []
        batch, state.queued = state.queued, []
        try:
            operation = self.cloud.resize(state.shape, state.name, len(machines) + len(batch), pool)
        except ThrottledError as error:
            state.queued = batch + state.queued  # asked again at the next poll
            log.info("pool %s: %s; launches kept for the next try", state.name, error)
            return
        except (InsufficientCapacityError, QuotaExceededError) as error:
            kind = "quota" if isinstance(error, QuotaExceededError) else "insufficient-capacity"
            self._fail(batch, kind, str(error))
            return
        except CloudError:
            state.queued = batch + state.queued
            raise
        state.operation, state.flying, state.before = operation, batch, frozenset(machines)
        log.info(
            "%s %s pool %s (%s%s) to %d for %d launch(es)",
            "scaling" if pool is not None else "creating",
            self.name,
            state.name,
            state.shape.instance_type,
            ", spot" if state.shape.spot else "",
            len(machines) + len(batch),
            len(batch),
        )

    def _fail(self, tickets: builtins.list[Ticket], kind: str, reason: str) -> None:
        for ticket in tickets:
            self.failed[ticket.token] = Instance(
                id=f"{PENDING}{ticket.token}",
                token=ticket.token,
                cluster_id=self.cluster_id,
                instance_type="",
                category="",
                zone="",
                state=InstanceState.TERMINATED,
                created_at=ticket.requested_at,
                failure_kind=kind,
                failure_reason=reason,
            )

    def _pending(self, shape: Shape, ticket: Ticket) -> Instance:
        return Instance(
            id=f"{PENDING}{ticket.token}",
            token=ticket.token,
            cluster_id=self.cluster_id,
            instance_type=shape.instance_type,
            category="spot" if shape.spot else "on-demand",
            zone=self.cloud.zone_name(shape.zone),
            state=InstanceState.PENDING,
            created_at=ticket.requested_at,
            labels=dict(ticket.labels),
        )

    # --- operations in flight --------------------------------------------------------------------

    def advance(self) -> None:
        """Finish the operations that are done, then ask for what waits. Each operation
        is asked about at most once per its share of `operation_polls_per_s`; a throttled
        answer stops the round and pauses the reads for as long as the cloud asks."""
        now = self.clock()
        with self.lock:
            running = sum(1 for s in self.states.values() if s.operation is not None)
            every = running / self.operation_polls_per_s
            for state in builtins.list(self.states.values()):
                if state.operation is not None and now >= self.reads_paused_until:
                    if state.polled_at is not None and now - state.polled_at < every:
                        continue
                    state.polled_at = now
                    try:
                        done, failure = self.cloud.finished(state.operation)
                    except ThrottledError as error:
                        self.reads_paused_until = now + error.retry_after_s
                        log.info("pool %s: polling its operation: %s", state.name, error)
                        continue
                    except CloudError as error:
                        log.info("pool %s: polling its operation: %s", state.name, error)
                        continue
                    if done:
                        self._finish(state, failure)
                if state.operation is None and state.queued:
                    try:
                        self._flush(state)
                    except CloudError as error:
                        log.warning("pool %s: %s", state.name, error)

    def _finish(self, state: PoolState, failure: tuple[str, str] | None) -> None:
        flying, undoing = state.flying, state.undoing
        state.operation, state.flying, state.undoing = None, [], False
        state.polled_at = None
        if undoing:
            if failure is not None:
                log.warning("undoing on pool %s failed: %s", state.name, failure[1])
            return
        if failure is not None:
            self._fail(flying, *failure)
            log.warning("pool %s: the operation failed: %s", state.name, failure[1])
            self._undo(state)
            return
        pool = self.cloud.pool(state.name)
        added = sorted(
            (m for m in (pool.members if pool else ()) if m.name not in state.before),
            key=lambda m: m.name,
        )
        for ticket, member in zip(flying, added, strict=False):
            self.tokens[member.name] = ticket.token
            self.assigned[ticket.token] = member.name
            self.first_seen.setdefault(member.name, ticket.requested_at)
        for ticket in flying[len(added) :]:
            self._fail([ticket], "insufficient-capacity", f"pool {state.name} did not grow")

    def _undo(self, state: PoolState) -> None:
        """Set a failed pool back: its size to the machines it has, or the pool deleted."""
        pool = self.cloud.pool(state.name)
        if pool is None:
            return
        healthy = [m for m in pool.members if m.failure is None]
        try:
            if healthy:
                state.operation = self.cloud.resize(state.shape, state.name, len(healthy), pool)
            else:
                state.operation = self.cloud.delete_pool(pool)
            state.undoing = True
        except CloudError as error:
            log.warning("undoing the failed pool %s: %s; will retry", state.name, error)

    # --- the provider interface -------------------------------------------------------------------

    def _instance(self, pool: PoolView, member: Member) -> Instance:
        failure = member.failure
        return Instance(
            id=member.id,
            token=self.tokens.get(member.name, f"{self.name}-{member.name}"),
            cluster_id=self.cluster_id,
            instance_type=pool.shape.instance_type,
            category="spot" if pool.shape.spot else "on-demand",
            zone=self.cloud.zone_name(pool.shape.zone),
            state=InstanceState.RUNNING if member.running else InstanceState.PENDING,
            created_at=self.first_seen.setdefault(member.name, self.clock()),
            node_name=member.node_name,
            labels=dict(pool.shape.labels),
            failure_kind=failure[0] if failure else "",
            failure_reason=failure[1] if failure else "",
        )

    def get(self, instance_id: str) -> Instance:
        self.advance()
        with self.lock:
            if instance_id.startswith(PENDING):
                token = instance_id[len(PENDING) :]
                if token in self.failed:
                    return self.failed[token]
                for state in self.states.values():
                    for ticket in (*state.queued, *state.flying):
                        if ticket.token == token:
                            return self._pending(state.shape, ticket)
                if token not in self.assigned:
                    raise InstanceNotFoundError(instance_id)
                instance_id = self.assigned[token]
        for pool in self._recent_pools():
            for member in pool.members:
                if member.is_called(instance_id):
                    return self._instance(pool, member)
        raise InstanceNotFoundError(instance_id)

    def _recent_pools(self) -> builtins.list[PoolView]:
        """The pools as read at most POLL_CACHE_S ago: the loop asks `get` about every
        launch in flight in a row, and lists them too, which must not be a listing of
        every pool each. While a throttled read's pause lasts, the last read or the
        throttling again (nothing is decided on a read not made)."""
        now = self.clock()
        with self.lock:
            if self.pools_read is not None and now - self.pools_read[0] < POLL_CACHE_S:
                return self.pools_read[1]
            if now < self.reads_paused_until:
                raise ThrottledError(self.reads_paused_until - now, f"{self.name}: reads paused")
        try:
            pools = self.cloud.pools()
        except ThrottledError as error:
            with self.lock:
                self.reads_paused_until = now + error.retry_after_s
            raise
        with self.lock:
            self.pools_read = (now, pools)
        return pools

    def list(self, cluster_id: str) -> builtins.list[Instance]:
        self.advance()
        now = self.clock()
        out: builtins.list[Instance] = []
        for pool in self._recent_pools():
            with self.lock:
                state = self.states.get(pool.name)
                tickets = [*state.queued, *state.flying] if state else []
                ours = bool(state and state.operation is not None)
                before = state.before if state is not None and ours else None
                self._hand_over_slots(pool)
            # Machines our own operation is adding are its launches' (listed as those until
            # it ends and gives them out), not machines of unknown launches to adopt.
            out.extend(
                self._instance(pool, m) for m in pool.members if before is None or m.name in before
            )
            out.extend(self._pending(pool.shape, t) for t in tickets)
            slots = self._slots(pool) if pool.busy and not ours else []
            if slots:
                with self.lock:
                    self.slot_tokens[pool.name] = [i.token for i in slots]
            out.extend(slots)
            members = len(pool.members) + len(tickets) + len(slots)
            self._collect_empty(pool, members, pool.busy or ours, now)
        return out

    def _hand_over_slots(self, pool: PoolView) -> None:
        """When the operation a restart found running is over, its new machines take the
        tokens of the launches in flight adopted for it: the same launches, now with their
        machines (not a second set to adopt while the first waits to be dropped)."""
        if pool.busy or pool.name not in self.slot_tokens:
            return
        tokens = self.slot_tokens.pop(pool.name)
        for member in sorted(pool.members, key=lambda m: m.name):
            if tokens and member.name not in self.tokens:
                self.tokens[member.name] = tokens.pop(0)

    def _slots(self, pool: PoolView) -> builtins.list[Instance]:
        """Machines an operation this process did not start is adding (a restart lost its
        launches): launches in flight, so the planner counts them and launches nothing
        twice; when the machines come, they are adopted by name."""
        return [
            Instance(
                id=f"{PENDING}slot-{pool.name}-{index}",
                token=f"{self.name}-slot-{pool.name}-{index}",
                cluster_id=self.cluster_id,
                instance_type=pool.shape.instance_type,
                category="spot" if pool.shape.spot else "on-demand",
                zone=self.cloud.zone_name(pool.shape.zone),
                state=InstanceState.PENDING,
                created_at=self.first_seen.setdefault(f"slot-{pool.name}-{index}", self.clock()),
                labels=dict(pool.shape.labels),
            )
            for index in range(max(0, pool.count - len(pool.members)))
        ]

    def _collect_empty(self, pool: PoolView, members: int, busy: bool, now: float) -> None:
        if members or busy:
            self.empty_since.pop(pool.name, None)
            return
        since = self.empty_since.setdefault(pool.name, now)
        if now - since < self.empty_pool_s:
            return
        try:
            self.cloud.delete_pool(pool)
        except CloudError as error:
            log.info("deleting empty pool %s: %s; will retry", pool.name, error)
            return
        log.info("pool %s has been empty for %.0fs; deleting it", pool.name, now - since)
        self.empty_since.pop(pool.name, None)
        with self.lock:
            self.states.pop(pool.name, None)

    def delete(self, instance_id: str) -> None:
        with self.lock:
            if instance_id.startswith(PENDING):
                token = instance_id[len(PENDING) :]
                if self.failed.pop(token, None) is not None or token.startswith("slot-"):
                    return  # nothing to remove: its operation failed, or is not ours to stop
                for state in self.states.values():
                    for ticket in builtins.list(state.queued):
                        if ticket.token == token:
                            state.queued.remove(ticket)
                            return
                if token not in self.assigned:
                    raise InstanceNotFoundError(instance_id)
                instance_id = self.assigned[token]
        for pool in self.cloud.pools():
            for member in pool.members:
                if member.is_called(instance_id):
                    self.cloud.remove(pool, member)
                    log.info("deleting %s of pool %s", member.name, pool.name)
                    return
        raise InstanceNotFoundError(instance_id)

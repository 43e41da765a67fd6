"""The GKE and Compute Engine emulator's state: node pools, their managed instance groups
and instances, operations, and the fault table; and `EmulatedFleet`, what the node agent
reads of it.

The emulator (`gibbous.devcluster.gcp.emulator`) keeps these records and answers the
clouds' APIs over them; the node agent (`gibbous.devcluster.gcp.agent`) reads them through
`EmulatedFleet` alone, so neither module imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Fault:
    """What goes wrong, for launches matching every field given (empty / None: any).

    kind: `stockout` (instances stay CREATING with ZONE_RESOURCE_POOL_EXHAUSTED; a pool
    created with nodes fails with GCE_STOCKOUT), `quota` (the same with QUOTA_EXCEEDED /
    GCE_QUOTA_EXCEEDED), `pool-stockout` (a pool's creation fails with GCE_STOCKOUT
    whatever its size, as when GKE cannot place its first nodes), `regional-quota`
    (create_node_pool refused at once with 403
    "Insufficient regional quota"), `throttle` (the next `times` requests answered 429
    RATE_LIMIT_EXCEEDED). `times`: how many launches it hits (None: all)."""

    kind: str
    machine_type: str = ""
    accelerator: str = ""
    spot: bool | None = None
    zone: str = ""
    times: int | None = None

    def matches(self, machine_type: str, accelerator: str, spot: bool, zone: str) -> bool:
        return (
            (not self.machine_type or self.machine_type == machine_type)
            and (not self.accelerator or self.accelerator == accelerator)
            and (self.spot is None or self.spot == spot)
            and (not self.zone or self.zone == zone)
        )


@dataclass
class ManagedInstance:
    name: str
    zone: str
    id: int
    ready_at: float  # when it runs, unless it fails
    failure: tuple[str, str] | None = None  # (code, message) of its last attempt
    deleting_at: float | None = None  # when it is gone

    def status(self, now: float) -> tuple[str, str]:
        """(instanceStatus, currentAction)."""
        if self.deleting_at is not None:
            return "STOPPING", "DELETING"
        if self.failure is not None or now < self.ready_at:
            return "PROVISIONING", "CREATING"
        return "RUNNING", "NONE"


@dataclass
class Mig:
    name: str
    zone: str
    base_name: str
    pool: str
    instances: dict[str, ManagedInstance] = field(default_factory=dict)


@dataclass
class Pool:
    body: dict[str, Any]  # the NodePool as GKE returns it (camelCase JSON)
    status: str
    migs: dict[str, Mig]  # zone -> its MIG
    operation: str = ""

    @property
    def name(self) -> str:
        return str(self.body["name"])


@dataclass
class Operation:
    name: str
    kind: str  # CREATE_NODE_POOL, DELETE_NODE_POOL, SET_NODE_POOL_SIZE, compute.*
    target: str
    started: float
    done_at: float
    finish: Callable[[], tuple[int, str, list[dict[str, str]]] | None] | None = None
    zone: str = ""  # compute operations
    error: tuple[int, str, list[dict[str, str]]] | None = None
    done: bool = False


class EmulatedFleet(Protocol):
    """What the node agent reads of the emulator: where it runs, and the instances running
    now with their node pool (as GKE returns it)."""

    project: str
    region: str
    version: str  # the cluster's GKE version (`1.37.2-gke.100`)

    def running_nodes(self) -> list[tuple[dict[str, Any], ManagedInstance]]: ...

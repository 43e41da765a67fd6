"""The AKS emulator's state: agent pools, their machines, long-running operations, and the
fault table; and `EmulatedFleet`, what the node agent reads of it.

The emulator (`gibbous.devcluster.azure.emulator`) keeps these records and answers ARM's
API over them; the node agent (`gibbous.devcluster.azure.agent`) reads them through
`EmulatedFleet` alone, so neither module imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Fault:
    """What goes wrong for pools matching every field given (empty / None: any).

    kind: an allocation code (`AllocationFailed`, `ZonalAllocationFailed`,
    `SkuNotAvailable`, `OverconstrainedAllocationRequest`, ...: the create or scale
    operation fails with it), `quota` (the PUT is refused at once with a cores-quota
    `OperationNotAllowed`), `throttle` (429 with Retry-After). `wrapped`: the failure comes
    as `ResourceOperationFailure` with the code in its details. `times`: how many
    operations it hits (None: all)."""

    kind: str
    vm_size: str = ""
    spot: bool | None = None
    zone: str = ""
    wrapped: bool = False
    times: int | None = None

    def matches(self, vm_size: str, spot: bool, zone: str) -> bool:
        return (
            (not self.vm_size or self.vm_size == vm_size)
            and (self.spot is None or self.spot == spot)
            and (not self.zone or self.zone == zone)
        )


@dataclass
class Machine:
    name: str
    index: int
    zone: str
    ready_at: float
    deleting_at: float | None = None


@dataclass
class AgentPool:
    name: str
    properties: dict[str, Any]  # as ARM returns them (camelCase JSON)
    vmss: str
    machines: dict[str, Machine] = field(default_factory=dict)
    state: str = "Creating"
    operation: str = ""  # the operation in progress, if any
    next_index: int = 0


@dataclass
class Operation:
    id: str
    pool: str
    done_at: float
    finish: Callable[[], dict[str, Any] | None]
    status: str = "InProgress"
    error: dict[str, Any] | None = None
    started: float = 0.0


class EmulatedFleet(Protocol):
    """What the node agent reads of the emulator: where it runs, the machines running now
    with their agent pool, and each machine's ARM resource ID."""

    location: str

    @property
    def node_resource_group(self) -> str: ...

    def running_machines(self) -> list[tuple[AgentPool, Machine]]: ...

    def resource_id(self, pool: AgentPool, machine: Machine) -> str: ...

"""Resource vectors in canonical integer units.

cpu in millicores; memory and ephemeral-storage in bytes; `nvidia.com/gpu`,
pods and every other extended resource as whole counts (hugepages in bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gibbous.core import keys
from gibbous.core.grammar.quantity import (
    cached_millis,
    cached_units,
    format_bytes,
    format_cpu,
    format_gib,
    to_millis,
    to_units,
)

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL = "ephemeral-storage"
PODS = "pods"
GPU = keys.NVIDIA_GPU


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    pods: int = 0
    ephemeral_bytes: int = 0
    # Other extended resources, sorted by name, so equal vectors compare equal.
    extended: tuple[tuple[str, int], ...] = field(default=())

    @classmethod
    def from_resource_list(cls, values: Mapping[str, object], field_path: str) -> Resources:
        """Parse a Kubernetes ResourceList (`{"cpu": "500m", "memory": "1Gi"}`).

        Errors name `field_path.<resource>`; the path is only built when one occurs."""
        return cls.total(((values, field_path),))

    @classmethod
    def total(
        cls, resource_lists: Iterable[tuple[Mapping[str, object], str]], pods: int = 0
    ) -> Resources:
        """The sum of several ResourceLists (each with its field path for errors) and
        `pods`, built as one vector: the pod-requests hot path sums a pod's containers."""
        cpu = memory = gpus = ephemeral = 0
        extended: dict[str, int] = {}
        for values, field_path in resource_lists:
            for name, raw in values.items():
                if name == CPU:
                    value = cached_millis(raw)
                    cpu += value if value is not None else to_millis(raw, f"{field_path}.{name}")
                    continue
                value = cached_units(raw)
                if value is None:
                    value = to_units(raw, f"{field_path}.{name}")
                if name == MEMORY:
                    memory += value
                elif name == GPU:
                    gpus += value
                elif name == PODS:
                    pods += value
                elif name == EPHEMERAL:
                    ephemeral += value
                else:
                    extended[name] = extended.get(name, 0) + value
        return cls(
            cpu, memory, gpus, pods, ephemeral, tuple(sorted(extended.items())) if extended else ()
        )

    def to_resource_list(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.cpu_millis:
            out[CPU] = format_cpu(self.cpu_millis)
        if self.memory_bytes:
            out[MEMORY] = format_bytes(self.memory_bytes)
        if self.ephemeral_bytes:
            out[EPHEMERAL] = format_bytes(self.ephemeral_bytes)
        if self.gpus:
            out[GPU] = str(self.gpus)
        if self.pods:
            out[PODS] = str(self.pods)
        for name, value in self.extended:
            out[name] = str(value)
        return out

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis + other.cpu_millis,
            self.memory_bytes + other.memory_bytes,
            self.gpus + other.gpus,
            self.pods + other.pods,
            self.ephemeral_bytes + other.ephemeral_bytes,
            _merge(self.extended, other.extended, lambda a, b: a + b),
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis - other.cpu_millis,
            self.memory_bytes - other.memory_bytes,
            self.gpus - other.gpus,
            self.pods - other.pods,
            self.ephemeral_bytes - other.ephemeral_bytes,
            _merge(self.extended, other.extended, lambda a, b: a - b),
        )

    def maximum(self, other: Resources) -> Resources:
        return Resources(
            max(self.cpu_millis, other.cpu_millis),
            max(self.memory_bytes, other.memory_bytes),
            max(self.gpus, other.gpus),
            max(self.pods, other.pods),
            max(self.ephemeral_bytes, other.ephemeral_bytes),
            _merge(self.extended, other.extended, max),
        )

    def fits_in(self, capacity: Resources) -> bool:
        """True when every requested amount is within `capacity` (missing extended = 0)."""
        if (
            self.cpu_millis > capacity.cpu_millis
            or self.memory_bytes > capacity.memory_bytes
            or self.gpus > capacity.gpus
            or self.pods > capacity.pods
            or self.ephemeral_bytes > capacity.ephemeral_bytes
        ):
            return False
        if not self.extended:
            return True
        available = dict(capacity.extended)
        return all(value <= available.get(name, 0) for name, value in self.extended)

    def shortfalls(self, capacity: Resources) -> list[str]:
        """Names of the resources that do not fit, in Kubernetes spelling."""
        out = []
        if self.cpu_millis > capacity.cpu_millis:
            out.append(CPU)
        if self.memory_bytes > capacity.memory_bytes:
            out.append(MEMORY)
        if self.gpus > capacity.gpus:
            out.append(GPU)
        if self.pods > capacity.pods:
            out.append(PODS)
        if self.ephemeral_bytes > capacity.ephemeral_bytes:
            out.append(EPHEMERAL)
        available = dict(capacity.extended)
        out.extend(name for name, value in self.extended if value > available.get(name, 0))
        return out

    def is_nonnegative(self) -> bool:
        return min(
            self.cpu_millis, self.memory_bytes, self.gpus, self.pods, self.ephemeral_bytes
        ) >= 0 and all(value >= 0 for _, value in self.extended)

    def summary(self) -> str:
        """`63.67 CPU, 243.83Gi memory, 1 GPU` for people (no ephemeral storage, pods)."""
        cpu = self.cpu_millis / 1000
        parts = [
            f"{cpu:g} CPU" if cpu == int(cpu) else f"{cpu:.2f} CPU",
            f"{format_gib(self.memory_bytes)} memory",
        ]
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        return ", ".join(parts)

    def describe(self) -> str:
        """`cpu=1500m memory=2Gi nvidia.com/gpu=1` for messages."""
        return " ".join(f"{k}={v}" for k, v in self.to_resource_list().items()) or "nothing"


def _merge(
    left: tuple[tuple[str, int], ...],
    right: tuple[tuple[str, int], ...],
    combine: Callable[[int, int], int],
) -> tuple[tuple[str, int], ...]:
    if not left and not right:
        return ()
    names = {name for name, _ in left} | {name for name, _ in right}
    a, b = dict(left), dict(right)
    merged = ((name, combine(a.get(name, 0), b.get(name, 0))) for name in sorted(names))
    return tuple((name, value) for name, value in merged if value != 0)


def total(vectors: Iterable[Resources]) -> Resources:
    out = Resources()
    for vector in vectors:
        out = out + vector
    return out

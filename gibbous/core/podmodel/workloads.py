"""A workload read from a manifest: the pod template and how many pods its controller
makes of it (the unit `gibbous estimate` plans and reports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gibbous.core.errors import ManifestError


@dataclass(frozen=True)
class Workload:
    name: str  # e.g. `llm-serve` or `llm-serve/worker-gpu-group` for Ray groups
    namespace: str
    kind: str
    replicas: int
    template: Mapping[str, Any]  # pod template: {"metadata": ..., "spec": ...}
    source: str = ""  # where in the input: `file:document` (`file:document.item` in a List)


# After a generateName prefix: the API server appends random characters, so the object
# reads as `prefix<generated>` rather than as one named `prefix`.
GENERATED = "<generated>"


def whole_number(value: object, default: int, where: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"{where}: expected a whole number >= 0, got {value!r}")
    return value


def pod_template(obj: Mapping[str, Any], path: str, where: str) -> Mapping[str, Any]:
    """The pod template at dotted `path` in `obj`."""
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping) or not isinstance(node.get("spec"), Mapping):
        raise ManifestError(f"{where}: missing pod template at {path}")
    return node


def job_pods(job_spec: Mapping[str, Any], where: str) -> int:
    """Pods a batch/v1 Job runs at once: min(parallelism, completions), parallelism 1 by default."""
    parallelism = whole_number(job_spec.get("parallelism"), 1, f"{where} parallelism")
    completions = job_spec.get("completions")
    if completions is not None:
        return min(parallelism, whole_number(completions, 1, f"{where} completions"))
    return parallelism

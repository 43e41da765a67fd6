"""What the mutating webhook changes on a Pod, as an RFC 6902 JSON Patch.

For a managed pod being created (managed = carries the management label, or its
namespace is listed in `managedNamespaces`, in which case the label is added):

1. labels: the management label where missing, and `gibbous.dev/placement`
   from the classification of the pod as it arrives (after VPA's webhook);
2. scheduling gates, only on CREATE (the API forbids adding one later):
   `gibbous.dev/provisioning` on bin-select pods when `provisioningGate` is on
   and the API server supports gates; Luna's `nodecostestimate` in
   `estimateOnlyNamespaces`; our provisioning gate is taken off again when a
   re-invocation finds the pod no longer bin-select;
3. tolerations of the configured spot taints when the pod may run on spot;
4. GKE GPU time-sharing nodeSelectors for GPU pods when `nvidiaGPUTimeSlices` > 1
   and `placeNodeSelector` is on;
5. `spec.schedulerName` when one is configured, only on pods bound for the default scheduler
   (no name, or `default-scheduler`): a pod that names another scheduler (KAI, Volcano, ...)
   keeps it, with an admission warning, and Gibbous still provisions for it when that
   scheduler marks it Unschedulable.

Patches are minimal: a parent missing from the object is created whole, keys are
escaped per RFC 6901, nothing already present is added again, and re-running on
the patched pod yields no operation (reinvocationPolicy: IfNeeded).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gibbous.core import keys
from gibbous.core.choice.classify import Placement, classify, offerings_for
from gibbous.core.errors import GibbousError
from gibbous.core.podmodel.affinity import pod_node_affinity
from gibbous.core.podmodel.constraints import (
    InstanceConstraints,
    PriceCategory,
    ignored_by_opt_out,
    parse_constraints,
    unknown_luna_annotations,
)
from gibbous.core.podmodel.pods import (
    Pod,
    annotations_of,
    metadata,
    pod_requests,
    tolerates,
)
from gibbous.core.podmodel.pods import spec as pod_spec
from gibbous.core.settings.config import Config

Operation = dict[str, Any]


@dataclass(frozen=True)
class Mutation:
    managed: bool
    operations: tuple[Operation, ...] = ()
    warnings: tuple[str, ...] = ()
    placement: Placement | None = None


@dataclass(frozen=True)
class ServerFeatures:
    """What the API server supports, detected by the shell (e.g. from its version)."""

    scheduling_gates: bool = True


def escape(key: str) -> str:
    """RFC 6901 reference token: `~` -> `~0`, `/` -> `~1`."""
    return key.replace("~", "~0").replace("/", "~1")


def parse_taint(text: str) -> dict[str, str]:
    """`key=value:Effect` or `key:Effect` -> a Taint object."""
    body, _, effect = text.rpartition(":")
    key, sep, value = body.partition("=")
    taint = {"key": key, "effect": effect}
    if sep:
        taint["value"] = value
    return taint


@functools.lru_cache(maxsize=16)
def _spot_tolerations(
    texts: tuple[str, ...],
) -> tuple[tuple[dict[str, str], dict[str, str]], ...]:
    """(taint, the toleration that tolerates it) per configured spot taint; callers copy."""
    return tuple((taint, toleration_for(taint)) for taint in map(parse_taint, texts))


def toleration_for(taint: Mapping[str, str]) -> dict[str, str]:
    if "value" in taint:
        return {
            "key": taint["key"],
            "operator": "Equal",
            "value": taint["value"],
            "effect": taint["effect"],
        }
    return {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]}


def is_managed(pod: Pod, namespace: str, config: Config) -> tuple[bool, bool]:
    """(managed, label must be added)."""
    if ignored_by_opt_out(annotations_of(pod)):
        return False, False
    if config.designation.marks(pod):
        return True, False
    if namespace in config.managed_namespaces or "*" in config.managed_namespaces:
        return True, True
    return False, False


@dataclass
class _Patch:
    """Collects operations against the pod as it arrives."""

    pod: Mapping[str, Any]
    operations: list[Operation] = field(default_factory=list)

    def set_map_entries(self, parent: str, container: Any, entries: dict[str, str]) -> None:
        """Ensure `entries` in the object at `parent` (creating it whole if absent)."""
        if not isinstance(container, Mapping):
            if entries:
                self.operations.append({"op": "add", "path": parent, "value": dict(entries)})
            return
        for key, value in entries.items():
            if container.get(key) != value:
                self.operations.append(
                    {"op": "add", "path": f"{parent}/{escape(key)}", "value": value}
                )

    def append_items(self, parent: str, container: Any, items: list[Any]) -> None:
        if not items:
            return
        if not isinstance(container, list):
            self.operations.append({"op": "add", "path": parent, "value": list(items)})
            return
        for item in items:
            self.operations.append({"op": "add", "path": f"{parent}/-", "value": item})


def plan_mutation(
    pod: Pod,
    *,
    namespace: str,
    operation: str,
    config: Config,
    features: ServerFeatures,
) -> Mutation:
    """The patch for `pod`; never raises on bad pod content (validation reports that)."""
    managed, add_label = is_managed(pod, namespace, config)
    if not managed or operation != "CREATE":
        return Mutation(managed=managed)
    if not isinstance(pod.get("metadata"), Mapping) or not isinstance(pod.get("spec"), Mapping):
        # Not a pod as the API server sends one: a patch would name parents that do not exist.
        return Mutation(True, (), ("gibbous: the object has no pod metadata or spec; unchanged",))
    patch = _Patch(pod)
    warnings: list[str] = []
    meta = metadata(pod)
    spec = pod_spec(pod)

    placement: Placement | None = None
    requests = None
    pod_annotations = annotations_of(pod)
    try:
        requests = pod_requests(pod)
        placement = classify(requests, pod_annotations, config).placement
    except GibbousError as error:
        warnings.append(f"gibbous: pod not classified: {error}")
    unknown = unknown_luna_annotations(pod_annotations)
    if unknown:
        warnings.append(
            f"gibbous: annotation(s) {', '.join(unknown)} not known to Gibbous; ignored "
            "(docs/decisions.md lists the Luna annotations it acts on)"
        )
    try:
        constraints: InstanceConstraints | None = parse_constraints(pod_annotations)
    except GibbousError:
        constraints = None

    new_labels: dict[str, str] = {}
    if add_label:
        label_key, label_value = config.managed_label
        new_labels[label_key] = label_value
    if placement is not None:
        new_labels[keys.PLACEMENT] = str(placement)
    patch.set_map_entries("/metadata/labels", meta.get("labels"), new_labels)

    _plan_gates(
        patch,
        spec=spec,
        placement=placement,
        namespace=namespace,
        config=config,
        features=features,
        warnings=warnings,
    )

    if placement is not None and PriceCategory.SPOT in offerings_for(
        constraints.offerings if constraints else None, placement, config, pod_node_affinity(pod)
    ):
        raw_tolerations = spec.get("tolerations")
        existing: list[Mapping[str, Any]] = (
            [t for t in raw_tolerations if isinstance(t, Mapping)]
            if isinstance(raw_tolerations, list)
            else []
        )
        missing: list[Mapping[str, Any]] = []
        for taint, toleration in _spot_tolerations(config.effective_spot_tolerations):
            if not tolerates(existing, taint) and not tolerates(missing, taint):
                missing.append(dict(toleration))
        patch.append_items("/spec/tolerations", spec.get("tolerations"), missing)

    if (
        requests is not None
        and requests.gpus
        and config.cloud == "gcp"
        and config.nvidia_gpu_time_slices > 1
        and config.place_node_selector
    ):
        selectors = {
            keys.GKE_GPU_SHARING_STRATEGY: "time-sharing",
            keys.GKE_MAX_SHARED_CLIENTS: str(config.nvidia_gpu_time_slices),
        }
        current = spec.get("nodeSelector")
        conflicting = [
            k
            for k, v in selectors.items()
            if isinstance(current, Mapping) and k in current and current[k] != v
        ]
        if conflicting:
            warnings.append(
                f"gibbous: nodeSelector {', '.join(conflicting)} differs from nvidiaGPUTimeSlices="
                f"{config.nvidia_gpu_time_slices}; left as the pod has it"
            )
            selectors = {k: v for k, v in selectors.items() if k not in conflicting}
        patch.set_map_entries("/spec/nodeSelector", current, selectors)

    _plan_scheduler_name(patch, spec, config, warnings)

    return Mutation(True, tuple(patch.operations), tuple(warnings), placement)


DEFAULT_SCHEDULER = "default-scheduler"


def _plan_scheduler_name(
    patch: _Patch, spec: Mapping[str, Any], config: Config, warnings: list[str]
) -> None:
    wanted = config.scheduler_name
    named = spec.get("schedulerName")
    if not wanted or named == wanted:
        return
    if named in (None, "", DEFAULT_SCHEDULER):
        patch.operations.append({"op": "add", "path": "/spec/schedulerName", "value": wanted})
        return
    # Taking the pod from the scheduler it names would bypass that scheduler's queues and
    # quotas (KAI, Volcano); the autoscaler still provisions when it reports the pod
    # Unschedulable.
    warnings.append(
        f"gibbous: schedulerName {named!r} left as the pod has it (not routed to {wanted!r})"
    )


def _plan_gates(
    patch: _Patch,
    *,
    spec: Mapping[str, Any],
    placement: Placement | None,
    namespace: str,
    config: Config,
    features: ServerFeatures,
    warnings: list[str],
) -> None:
    raw = spec.get("schedulingGates")
    gates = [g.get("name") for g in raw if isinstance(g, Mapping)] if isinstance(raw, list) else []
    wanted: list[str] = []
    if namespace in config.estimate_only_namespaces and keys.COST_ESTIMATE_GATE not in gates:
        wanted.append(keys.COST_ESTIMATE_GATE)
    gate_ours = config.provisioning_gate and features.scheduling_gates
    if config.provisioning_gate and not features.scheduling_gates:
        warnings.append(
            "gibbous: provisioningGate is on but this API server has no scheduling gates; not gated"
        )
    if gate_ours and placement is Placement.BIN_SELECT and keys.PROVISIONING_GATE not in gates:
        wanted.append(keys.PROVISIONING_GATE)
    if wanted and not features.scheduling_gates:
        return
    if gate_ours and placement is Placement.BIN_PACK and keys.PROVISIONING_GATE in gates:
        # Re-invocation after VPA shrank the pod: it no longer needs its own node.
        index = gates.index(keys.PROVISIONING_GATE)
        patch.operations.append({"op": "remove", "path": f"/spec/schedulingGates/{index}"})
        return
    patch.append_items("/spec/schedulingGates", raw, [{"name": name} for name in wanted])


def pinned_elsewhere(pod: Pod, hostname: str | None) -> str:
    """The `kubernetes.io/hostname` the pod's own nodeSelector names when it is not the
    node made for it (the release then keeps the user's choice), else ""."""
    selector = pod_spec(pod).get("nodeSelector")
    if not hostname or not isinstance(selector, Mapping):
        return ""
    own = selector.get(keys.HOSTNAME)
    return str(own) if own is not None and own != hostname else ""


def plan_release(pod: Pod, hostname: str | None) -> list[Operation]:
    """Lift Gibbous's provisioning gate off a gated pod, first narrowing its nodeSelector to
    the node made for it (`kubernetes.io/hostname`), which the API allows only while the pod
    is gated. A `test` of the gate list makes the patch fail, rather than clobber, if someone
    changed the gates in between. No operation when our gate is not there."""
    gates = pod_spec(pod).get("schedulingGates")
    if not isinstance(gates, list) or not any(
        isinstance(g, Mapping) and g.get("name") == keys.PROVISIONING_GATE for g in gates
    ):
        return []
    operations: list[Operation] = []
    selector = pod_spec(pod).get("nodeSelector")
    if hostname:
        if not isinstance(selector, Mapping):
            operations.append(
                {"op": "add", "path": "/spec/nodeSelector", "value": {keys.HOSTNAME: hostname}}
            )
        elif keys.HOSTNAME not in selector:
            operations.append(
                {
                    "op": "add",
                    "path": f"/spec/nodeSelector/{escape(keys.HOSTNAME)}",
                    "value": hostname,
                }
            )
    kept = [
        g for g in gates if not (isinstance(g, Mapping) and g.get("name") == keys.PROVISIONING_GATE)
    ]
    current = [dict(g) if isinstance(g, Mapping) else g for g in gates]
    operations.append({"op": "test", "path": "/spec/schedulingGates", "value": current})
    if kept:
        operations.append({"op": "replace", "path": "/spec/schedulingGates", "value": kept})
    else:
        operations.append({"op": "remove", "path": "/spec/schedulingGates"})
    return operations
